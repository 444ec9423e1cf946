"""Pure figure builders: (data, options) -> go.Figure, unit-testable without a server."""
