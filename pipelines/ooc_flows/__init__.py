"""Prefect 3 flows of ooc, and the ``ooc`` command line that runs them.

Shipped as the import package ``ooc_flows`` (not ``pipelines``, a name other projects use too)
in the same distribution as the library; the library ``ooc`` never imports it.
"""
