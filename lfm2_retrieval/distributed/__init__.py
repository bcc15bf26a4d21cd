"""Beyond one machine, on Ray (an optional extra: pip install -e .[distributed]).

    encoding.py  `lfm2-search index --ray`: chunks encoded by Ray Data map_batches over stateful
                 encoder actors, the codec shipped to them; reading and commits stay local
    serving.py   `lfm2-search serve --ray`: Ray Serve, one deployment per shard and an ingress
                 with the same HTTP API, fanning out through deployment handles

Nothing here is imported unless asked for: the base install needs no Ray.
"""
