"""What may happen: risk classification, approval gates, egress allowlists, budgets and roles.

Empty until the policies capability lands (issue 5). The action side-effect classes it will build
on are declared in :class:`tools.SideEffect`.
"""

__all__: list[str] = []
