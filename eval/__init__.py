"""Benchmarks and leaderboards, run from the repository root as modules: `python -m eval.NAME`.
Each prints a table (and writes it under eval/out/); none is a test.

    quality      nanobeir.py (NanoBEIR leaderboards, cross-lingual grid), real_documents.py (real
                 translated documentation), ntrex_languages.py, tune_fusion.py (dev data only),
                 language_id.py, tokenizer_coverage.py, average_models.py
    speed        bench_index.py (this index against its peers, eval/peers/), bench_encode.py,
                 bench_api.py, bench_ingest.py, bench_distributed.py, bench_metadata.py,
                 bench_teacher.py, bm25_segments.py, codec_fidelity.py, search_stages.py
    robustness   soak.py (hours of mixed traffic, faults, descriptor limits)

    collections/     the vectors and queries the index benchmarks search
    peers/           the other engines, each behind one function
    measure.py       latency, recall and table rows, measured the same way for every system
    random_models.py random-weight LFM2 ColBERT folders (tests and speed benchmarks)
    reference/       published numbers the leaderboards print beside ours
"""
