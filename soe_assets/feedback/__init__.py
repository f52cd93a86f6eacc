"""S&OP feedback (``marts.sop_feedback``), its HTML report and the S&OP-calendar sensor."""
