from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed static files, rewriting only CSS references.

    npm bundles name source maps that their packages do not ship next to them
    (`rrweb/umd/rrweb.min.js` points at `rrweb.umd.min.cjs.map`), which would fail
    collectstatic; JS files are served as they are.
    """

    patterns = tuple(
        (glob, rules)
        for glob, rules in CompressedManifestStaticFilesStorage.patterns
        if glob == "*.css"
    )
