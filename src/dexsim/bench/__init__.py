"""Benchmarks behind ``dexsim bench`` and ``dexsim plan`` (layer 5: above the library packages).

One module per benchmark, imported on use (each pulls in the layers it measures):
``render`` (renderer speed), ``prompts`` (visual action prompt speed), ``worldmodel`` (world model speed,
one-clip overfitting), ``step`` (``env.step`` latency, vector env throughput), ``plan`` (planning
agreement with the physics oracle).
"""
