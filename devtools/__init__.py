"""Development tools that the tests and the benchmark share (the service never imports them)."""
