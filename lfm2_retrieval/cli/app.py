"""The Typer application that every command module registers with."""

import typer

app = typer.Typer(
    help="Multilingual late-interaction search on the LFM2 backbone.\n\n"
         "Start with:  lfm2-search index ./docs  then  lfm2-search search \"your question\".\n"
         "Indexes live under ./indexes (a bare --index name) unless LFM2_SEARCH_INDEXES says otherwise.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
