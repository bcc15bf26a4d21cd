"""`python -m lfm2_retrieval.cli`: the same as the lfm2-search command."""

from . import main

main()
