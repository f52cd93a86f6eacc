"""KPIs (``marts.kpi_weekly``): one function per definition of ``shared/spec/marts.md``."""
