"""Jobs: where the parts are composed into what a command runs (model + backend, source, loop, outputs).

``edge.jobs.us``: the ultrasound job (``us run``, ``demo``, the UI, the benchmarks).
``edge.jobs.ct``: the CT scan job (``ct scan`` / ``ct watch``, the UI); ``ct_serve``: series received by
``ct listen``; ``ct_batch``: many studies, locally or on a Ray cluster. Commands (``edge.commands``) and the UI
(``edge.ui``) sit on top of these; the domain packages (``edge.us``, ``edge.ct``) never import them.
"""
