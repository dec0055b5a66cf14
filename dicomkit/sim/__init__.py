"""Stand-ins for a trust's PACS and its studies, for the demo, tests and benchmarks.

`SimPacs` is a small Storage/Query/Retrieve SCP with an index of what it holds; `synthetic` writes
studies of made-up patients. Production code never imports this package.
"""
