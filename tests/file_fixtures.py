"""Small files of every supported type, written by hand (no generator libraries needed)."""

from __future__ import annotations

from pathlib import Path


def pdf_bytes(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    objects: list[bytes] = []
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    font_id = 3 + 2 * n
    for i, text in enumerate(pages):
        content_id = 4 + 2 * i
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
                       f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode())
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def write_corpus(root: Path) -> dict[str, Path]:
    """A folder with one file of each type, plus a binary and a broken-UTF-8 file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    files = {
        "md": root / "guide.md", "txt": root / "notes.txt", "rst": root / "manual.rst",
        "html": root / "page.html", "json": root / "items.json", "jsonl": root / "sub" / "records.jsonl",
        "csv": root / "table.csv", "tsv": root / "table.tsv", "parquet": root / "rows.parquet",
        "pdf": root / "paper.pdf", "binary": root / "blob.txt", "broken": root / "latin1.txt",
    }
    files["md"].write_text("# Compression guide\n\nResidual codecs quantize each dimension into buckets.\n")
    files["txt"].write_text("Volcanoes erupt when magma pressure exceeds the strength of the crust.\n")
    files["rst"].write_text("Manual title\n============\n\nThe writer lock prevents two writers at once.\n")
    files["html"].write_text("<html><head><title>Recipes</title><style>p{}</style><script>var x = 'hidden';"
                             "</script></head><body><h1>Bread</h1><p>Knead the dough &amp; let it rise.</p>"
                             "</body></html>")
    files["json"].write_text('[{"id": "j1", "text": "Jupiter is the largest planet.", "topic": "space"},'
                             ' {"id": "j2", "text": "Photosynthesis makes sugar from light.", "topic": "bio"}]')
    files["jsonl"].write_text('{"id": "l1", "text": "Tides follow the moon.", "year": 2021}\n'
                              '{this line is broken\n'
                              '{"id": "l2", "text": "Glaciers carve valleys.", "year": 2019}\n')
    files["csv"].write_text('id,text,lang\nc1,"Rivers flow to the sea, mostly.",en\nc2,Les rivières coulent.,fr\n')
    files["tsv"].write_text("id\ttext\nt1\tDeserts receive little rain.\n")
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["Parquet stores columns.", "Arrow is in memory."],
                             "rank": [1, 2]}), files["parquet"])
    files["pdf"].write_bytes(pdf_bytes(["Page one talks about lighthouses.", "Page two is about harbours."]))
    files["binary"].write_bytes(bytes(range(256)) * 8)
    files["broken"].write_bytes("Caf\u00e9 au lait, cr\u00e8me br\u00fbl\u00e9e.".encode("latin-1"))
    (root / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    return files
