"""Access policies (issue #14): ordered rules per host, path, method and network that /auth/verify evaluates.

`policies.service` keeps the document (versioned, validated, audited with a readable diff), `policies.evaluate`
compiles the current version once and decides a request, `policies.decisions` keeps the non-allowed decisions for
the Decisions view, `policies.yaml_io` reads and writes the document as YAML with line-numbered errors, and
`policies.cli` is `flask policies export|import|versions` (registered by app.py).
"""

