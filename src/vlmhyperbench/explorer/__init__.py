"""``vlmhb view``: a local, read-only web app over a results folder and its datasets.

One job per module: :mod:`.catalog` (what the run holds), :mod:`.datasets` (the manifests its
provenance names), :mod:`.media` (images, only from those dataset folders), :mod:`.filters`
(a task page's filter, as it travels in the URL), :mod:`.query` (DuckDB over the score
parquets), :mod:`.sample` (one sample across models), :mod:`.diff` (the run against a
baseline run), :mod:`.pages` (page contexts), :mod:`.render` (Jinja2, autoescaped),
:mod:`.export` (one self-contained page), :mod:`.app` (the FastAPI router) and :mod:`.serve`
(uvicorn on 127.0.0.1 unless told otherwise).
"""
