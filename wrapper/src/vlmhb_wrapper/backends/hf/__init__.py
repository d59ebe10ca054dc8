"""In-process Hugging Face ``transformers`` backend with dynamic batching.

Pipeline of one request::

    event loop ──► preprocessing pool ──► batch queue ──► generation thread ──► event loop
    (validate)     (chat template +       (collect for     (one generate() per   (decode,
                    processor, per         batch_wait_ms,    batch; per-row stop,  stop strings,
                    request, parallel)     up to max batch)  tokens streamed out)  SSE/JSON)

* **Batching.** The generation thread takes the first queued request, waits up to
  ``batch_wait_ms`` for more, up to ``max_batch_size``, left-pads their already-processed
  inputs and runs one ``generate``. The wait counts from that request's arrival in the queue
  or from the end of the previous batch, whichever is later: the clients of a batch that just
  ended send their next requests within milliseconds, and starting a new batch with only the
  one request that waited would split the load into a small and a large batch for good
  (1 + 31 at concurrency 32). For the same reason the wait goes on while requests already
  accepted are still being preprocessed (up to ``FILL_WAIT_FACTOR`` times the wait).
  Requests whose processor outputs cannot be stacked (e.g. with and without images) go to
  different batches; order is otherwise FIFO.
* **Per-row control.** A stopping criterion sees every new token of every row: it streams the
  token to its request, and ends that row on its EOS (unless ``ignore_eos``), at its own
  ``max_tokens``, or when its client went away. A logits processor applies each row's own
  sampling (temperature, top-p, a private ``torch.Generator`` seeded from the request's
  ``seed``, so a seeded answer does not depend on its batch mates) and ``min_tokens``.
* **Honest telemetry.** ``prompt_tokens`` is each request's own prompt length (no padding);
  ``queue_ms`` is the time a request waited for a preprocessing worker plus the time from
  entering the batch queue until its batch started; TTFT is when generate produced its first
  token; ``batch_size`` says how many requests shared the batch.

Modules: :mod:`.backend` (:class:`HFBackend`: loading, the generation thread, preprocessing,
streaming), :mod:`.rows` (one request in the pipeline, events back to the event loop),
:mod:`.batcher` (the dynamic batcher), :mod:`.collate` (HF chat format, stacking a batch),
:mod:`.row_control` (per-row stop and sampling), :mod:`.detokenize` (token ids -> text deltas).
"""

from vlmhb_wrapper.backends.hf.backend import HFBackend

__all__ = ["HFBackend"]
