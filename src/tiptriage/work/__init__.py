"""Work: cases per agency, assignment, state transitions, SLA clocks and outcomes."""
