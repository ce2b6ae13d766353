"""Lead packages: the JSON, HTML and PDF an investigator receives, deadlines, draft letters and the CASE/UCO export."""
