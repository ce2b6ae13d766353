"""Assessment: indicators derived from a report, and the transparent policy that turns them into a tier and a score."""
