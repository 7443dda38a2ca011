"""Our Pelican plugins, one package each, loaded by Pelican from the settings' PLUGINS by their
dotted names (`plugins.lean`, ...). They may import the shared blog helpers (`blog.listing`,
`blog.feed_contract`, `blog.websub`, `blog.search`) and `blog.pelican_seam`, the one place that
touches Pelican's internals; no blog module imports them (pyproject.toml's import contracts)."""
