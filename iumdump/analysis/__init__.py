"""From a dump file to verdicts, for ``iumdump analyze`` and the Volatility plugins alike.

The modules in the order the data flows (DESIGN §3):

- :mod:`.preflight` — the dump file checked before Volatility sees it (no Volatility).
- :mod:`.volatility_env` — Volatility's process-wide settings for one analysis: its symbol path
  and private directories, its cache, offline mode, its logs captured for the report.
- :mod:`.livedump` — Volatility's crash dump layer extended to live kernel dumps (DumpType 6).
- :mod:`.engine` — one Volatility context, the kernel found in one automagic pass, then every
  check (:func:`.engine.collect`).
- :mod:`.processes` — every process: the active list and a pool scan, checked for what they pass
  over in silence.
- :mod:`.fields` — the field manifest: each value read from an EPROCESS, declared once (pure).
- :mod:`.eprocess` — each EPROCESS read by field name into :class:`.fields.ProcessFields`.
- :mod:`.derive` — pure: field values → secure state, the ten extended flags (each with its
  source, unknown as None), protection text, trustlet identity, verdicts.
- :mod:`.secure_pages` — which processes' pages are walked, and the control group judging them.
- :mod:`.pages` — the user page-table walk of one process and each mapped page classified as
  absent, zero-filled or readable, per VAD region.
- :mod:`.findings` — pure: what it all means, as findings for the report.

Beside them: :mod:`.layers` (what a Volatility layer stack holds), :mod:`.progress` (progress
bars and callbacks), :mod:`.hasher` (the evidence's sha256, beside the analysis) and
:mod:`.plugin_support` (what the plugins share). The pure modules (``fields``, ``derive``,
``findings``, ``preflight``) import nothing from Volatility; import each module by name.
"""
