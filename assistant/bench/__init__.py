"""`scripts/bench`: end of speech → first audio, measured on the real engines in real time.

`script` makes the input audio (espeak-ng speech, room noise) with the exact
sample where each request ends; `probe` hooks the runtime (bus events, clock,
speaker, STT/TTS compute) with `perf_counter` stamps; `metrics` turns one run
into per-turn figures; `report` prints the table and writes the JSON;
`runner` drives the phases.
"""
