"""The tap as an Airbyte source, `source-polyai`: a protocol face over the same engine."""
