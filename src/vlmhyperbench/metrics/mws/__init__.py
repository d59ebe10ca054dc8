"""MWS-Vision-Bench's five category scores, computed as its official evaluation computes them.

One module per category, each a metric ``fn(prediction, references, *, sample=None,
strip_reply=True) -> float`` named in ``config/metrics/mws_*.yaml``:

==================  ==========================  =========================================
metric              official ``type``           what it scores
==================  ==========================  =========================================
``mws_ocr``         ``full-page OCR ru``        BLEU, METEOR, F-measure, edit similarity
``mws_markdown``    ``document parsing ru``     heading-tree edit similarity
``mws_grounding``   ``text grounding ru``       IoU of the box parsed from the reply
``mws_kie``         ``key information           field matches of the reply's JSON
                    extraction ru``
``mws_vqa``         ``reasoning VQA ru``        substring / Levenshtein against every
                                                accepted answer
==================  ==========================  =========================================

**What a metric reads from a sample** (the contract with the ``mws_vision`` importer):

- the official ``answers`` list, as the dataset holds it, from ``sample["meta"]["mws"]
  ["answers"]``; when a sample has no such key, ``references`` *is* that list. OCR, Markdown
  and KIE take its one element (the page text; the Markdown; the KIE JSON text or object),
  grounding the four coordinates (strings or numbers: ``["10", "20", "110", "60"]``), VQA
  every accepted answer;
- ``sample["error"]``: a failed request scores 0 (the official runner's failure marker);
- nothing else: not the readable ``answers``, not ``meta.mws.box`` or ``meta.mws.kie``
  (both derived; the official rule parses the raw answers itself, quirks included).

``strip_reply`` (default true) strips the reply first, as every official runner does when it
records one. :mod:`.overall` has the ``Overall`` rule. Every place where we follow a quirk of
the official code is listed in the category modules' docstrings and in docs/mws_vision.md;
tests/unit/test_mws_metrics.py checks each, and checks all five against values the official
code computed (tests/fixtures/mws/official_scores.json, made by tools/mws_official_scores.py).
"""
