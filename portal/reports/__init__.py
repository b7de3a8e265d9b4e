"""The PDF case report, in three steps: `contents` reads what the report shows (the case, each search with
its faces and candidates, the review decisions, the confirmed leads, the audit entry ids, the images);
`layout` turns that into PDF bytes and nothing else; `render` is the worker's body that joins them, stores
the file and marks the report done or failed. `portal.services.case_report_request` asks for one."""
