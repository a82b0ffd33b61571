"""Stand-ins for the outside world that tests and the benchmark run against (an Ollama look-alike)."""
