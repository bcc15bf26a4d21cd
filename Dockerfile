# lfm2-search serving an index over HTTP, built from Debian's and PyPI's packages only.
#
#   docker build -t lfm2-search .
#   docker run --rm -p 127.0.0.1:8000:8000 -v lfm2-data:/data lfm2-search      # an empty index, served
#   docker run --rm -v lfm2-data:/data -v "$PWD/docs:/data/docs:ro" lfm2-search index /data/docs
#
# or `docker compose up` (compose.yaml). The model is the one embedded in the package; nothing is
# downloaded at run time. Set LFM2_SEARCH_API_KEY to require a key.
FROM debian:trixie-slim

# The numeric stack from Debian: python3-torch is a CPU build (2.6), which satisfies the package's
# torch>=2.5, so pip never fetches PyPI's CUDA wheels; numba, NumPy and SciPy come with it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
        python3-torch python3-numba python3-numpy python3-scipy ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# The rest from PyPI, into an environment that sees Debian's packages.
COPY pyproject.toml README.md /src/
COPY lfm2_core /src/lfm2_core
COPY lfm2_retrieval /src/lfm2_retrieval
RUN python3 -m venv --system-site-packages /opt/lfm2 \
    && /opt/lfm2/bin/pip install --no-cache-dir /src \
    && rm -rf /src

# Caches the package writes (numba's compiled kernels, py3langid's unpacked model) go to the
# data volume: the package folder is read-only to the user the server runs as.
ENV PATH=/opt/lfm2/bin:$PATH \
    LFM2_SEARCH_CACHE=/data/cache \
    NUMBA_CACHE_DIR=/data/cache/numba
RUN useradd --create-home --uid 1000 search && mkdir -p /data && chown search /data
USER search
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["lfm2-search"]
CMD ["serve", "--index", "/data/indexes/default", "--create", "--host", "0.0.0.0", "--port", "8000", "--root", "/data"]
