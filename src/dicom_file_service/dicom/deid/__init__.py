"""De-identification by PS3.15 Annex E: the Basic Application Level Confidentiality Profile
and its options (``profile``: Table E.1-1 as data), keyed pseudonyms (``pseudonyms``), and
the engine that applies them to a data set at every depth (``engine``)."""
