"""``iumdump fleet``: the analysis of ``iumdump analyze`` over many dumps, on Dask.

- :mod:`.inputs` — which files DUMP|DIR|GLOB name, and each dump's report folder;
- :mod:`.task` — what a worker runs for one dump (the engine's ``analyze``, one narrow call);
- :mod:`.cluster` — a local Dask cluster or a running one, with the settings the analysis needs;
- :mod:`.run` — the client: plan, submit, write each dump's reports, progress, Ctrl-C, resume;
- :mod:`.model` and :mod:`.render` — fleet.json (schema in iumdump/data/fleet.schema.json),
  fleet.csv and fleet.html (a Jinja2 template in ``templates/``).
"""
