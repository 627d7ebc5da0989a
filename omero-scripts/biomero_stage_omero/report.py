"""The check-setup report as text for OMERO.web's Activities panel."""


def setup_text(report):
    """``GET /api/v1/check-setup``'s ``setup`` as lines an admin reads top to bottom."""
    lines = [f"Slurm cluster `{report.get('host', '?')}`:"]
    for f in report.get("folders", []):
        state = "ok" if f.get("exists") and f.get("writable") else (
            "not writable" if f.get("exists") else "missing")
        lines.append(f"  {f.get('role')}: {f.get('path')} ({state})")
    ready = [w for w in report.get("workflows", []) if w.get("image_ready") and w.get("script_ready")]
    lines.append(f"Available workflows ({len(ready)} of {len(report.get('workflows', []))} ready):")
    for w in report.get("workflows", []):
        versions = ", ".join(w.get("available") or []) or "none"
        missing = []
        if not w.get("image_ready"):
            missing.append(f"container {w.get('sif')}")
        if not w.get("script_ready"):
            missing.append(f"job script {w.get('job_script')}")
        status = "ready" if not missing else "missing " + " and ".join(missing)
        lines.append(f"  {w.get('key')} {w.get('version')}: {status} (on the cluster: {versions})")
    for c in report.get("converters", []):
        lines.append(f"  converter {c.get('name')} {c.get('version')}: {'present' if c.get('present') else 'missing'}")
    for p in report.get("pending", []):
        lines.append(f"Pending: {p}")
    if any(not w.get("image_ready") for w in report.get("workflows", [])):
        lines.append("Run 'Slurm Init (Admin Only)' with 'Pull missing containers' to fetch missing containers.")
    return "\n".join(lines)
