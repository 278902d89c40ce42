"""Benchmarks: flow next to the OAuth clients people use today, and to bare httpx.

Run them all with ``python -m benchmarks`` (``--quick`` for tiny sizes, ``--json
PATH`` for the results as JSON); install their dependencies first with ``pip
install -r benchmarks/requirements.txt``. Scenarios:

* :mod:`~benchmarks.single_flow`: one complete authorization-code flow against
  ``httpx.MockTransport``; flow with each store, authlib, httpx-oauth, and a floor
  of bare httpx doing the same requests.
* :mod:`~benchmarks.resume_scale`: finding, moving and committing one flow among
  up to a million paused ones.
* :mod:`~benchmarks.memory`: process memory per paused flow, bytes per record.
* :mod:`~benchmarks.end_to_end`: flows per second and client CPU per flow against
  the real authorization server of the end-to-end tests.
* :mod:`~benchmarks.refresh`: concurrent API calls with an expired token.

Why pyperf, and not pytest-benchmark. The issue asks for peers side by side in one
process and run, for figures that are not durations (bytes, requests, flows per
second, CPU seconds), and for medians with 99th percentiles. pytest-benchmark
times one test function at a time, each run to completion before the next (so
machine drift lands on whichever runs last), reports no p99, and ties every run
to pytest. pyperf's own runner spawns a worker process per benchmark, which
would rebuild a million-row database and restart the authorization server for
each contender. So the loop here is ours (interleaved rounds, :mod:`.stats`), and
pyperf supplies what it is best at: its file format, written by ``--pyperf PATH``
with every raw timing, so that ``python -m pyperf stats``, ``hist`` and
``compare_to before.json after.json`` (with significance tests) work on a run.
pyperf is imported only for that option, so the scenarios, and the smoke test
that runs them, need nothing beyond flow's own test dependencies.

The numbers are never part of the test pass/fail: ``tests/test_benchmarks_smoke.py``
only checks, with tiny sizes, that every scenario still runs.
"""
