"""Window queries: dialect-free query values (``model``) and their renderers."""
