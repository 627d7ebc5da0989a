"""BIOMERO's own code (biomero 2.8.3, or 2.9.0b15 for detached runs), as the oracle of what biomero-stage
writes into BIOMERO's event store and views.

    oracle.py URL views             the four view tables, as JSON
    oracle.py URL read WF_ID...     the WorkflowRuns and their Tasks, read by BIOMERO's WorkflowTracker
    oracle.py URL reencode          every stored event decoded and encoded again by eventsourcing
    oracle.py URL catch-up          BIOMERO's four followers pull what they have not read; then the views
    oracle.py URL rebuild           what `Slurm Init` does (reset_tables): drop and rebuild the views; then the views
    oracle.py URL record            BIOMERO records a run of its own (SLURM_Run_Workflow.py's calls)
    oracle.py URL record-many N     BIOMERO records N runs of its own, as a biomero-stage run's tasks
                                    (benches/events.rs); prints the seconds inside the process
    oracle.py URL launch FILE       2.9: queues detached runs as the run script does (FILE: a JSON
                                    list of {user, group, script, inputs, workflows}), through
                                    biomero.detached.register_detached_launcher
    oracle.py URL history WF_ID     2.9: load_task_history and submitted_job of a detached run
    oracle.py URL claim TASK_ID     2.9: BIOMERO's own supervisor claims a launcher (claim_launcher_task)

URL is BIOMERO's sqlalchemy_url. Output is JSON on stdout.
"""
import json
import logging
import os
import sys
import uuid

logging.basicConfig(level=logging.WARNING)

from biomero.slurm_client import SlurmClient  # noqa: E402
from biomero.database import (  # noqa: E402
    EngineManager, JobView, JobProgressView, WorkflowProgressView, TaskExecution)
from biomero.eventsourcing import WorkflowTracker  # noqa: E402


class Host:
    """The part of SlurmClient that sets up BIOMERO's tracking, without SSH or GitHub."""


for _name in ["initialize_analytics_system", "setup_listeners", "get_listeners",
              "_find_analytics_start_id", "bring_listener_uptodate",
              "_get_config_value", "_CONFIG_ENV_VARS"]:
    setattr(Host, _name, SlurmClient.__dict__[_name])


def client(url, reset=False):
    os.environ["SQLALCHEMY_URL"] = url
    c = Host()
    c.track_workflows = True
    c.enable_job_accounting = True
    c.enable_job_progress = True
    c.enable_workflow_analytics = True
    c.sqlalchemy_url = url
    c.analytics_rebuild_start_time = None
    c.analytics_rebuild_days_ago = None
    c.initialize_analytics_system(reset_tables=reset)
    return c


def plain(v):
    if isinstance(v, uuid.UUID):
        return str(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def views():
    out = {}
    with EngineManager.get_session() as s:
        for model, key in [(WorkflowProgressView, "workflow_id"), (TaskExecution, "task_id"),
                           (JobView, "slurm_job_id"), (JobProgressView, "slurm_job_id")]:
            rows = []
            for r in s.query(model).all():
                rows.append({c.name: plain(getattr(r, c.name)) for c in model.__table__.columns})
            rows.sort(key=lambda r: str(r[key]))
            out[model.__tablename__] = rows
    return out


def read(c, ids):
    wft = c.workflowTracker
    out = []
    for wf_id in ids:
        wf = wft.repository.get(uuid.UUID(wf_id))
        tasks = []
        for t in wf.tasks:
            task = wft.repository.get(t)
            tasks.append({
                "id": str(task.id),
                "version": task.version,
                "task_name": task.task_name,
                "task_version": task.task_version,
                "input_data": task.input_data,
                "params": task.params,
                "job_ids": task.job_ids,
                "status": task.status,
                "progress": getattr(task, "progress", None),
                "result_message": task.result_message,
                "created_on": task.created_on.isoformat(),
                "modified_on": task.modified_on.isoformat(),
            })
        out.append({
            "id": str(wf.id),
            "version": wf.version,
            "name": wf.name,
            "description": wf.description,
            "user": wf.user,
            "group": wf.group,
            "tasks": tasks,
        })
    return out


def reencode(c):
    app = c.workflowTracker
    mismatches = []
    n = 0
    with EngineManager.get_session() as s:
        from sqlalchemy import text
        rows = s.execute(text(
            "SELECT id, originator_id, originator_version, topic, state FROM workflowtracker_events ORDER BY id")).fetchall()
    from eventsourcing.persistence import StoredEvent
    for r in rows:
        stored = StoredEvent(originator_id=r[1], originator_version=r[2], topic=r[3], state=bytes(r[4]))
        event = app.mapper.to_domain_event(stored)
        again = app.mapper.to_stored_event(event)
        n += 1
        if again.state != stored.state or again.topic != stored.topic:
            mismatches.append({"id": r[0], "stored": stored.state.decode(), "again": again.state.decode()})
    return {"events": n, "mismatches": mismatches}


def catch_up(c):
    for listener in [c.jobAccounting, c.jobProgress, c.wfProgress, c.workflowAnalytics]:
        listener.pull_and_process(leader_name=WorkflowTracker.__name__)
    return views()


def record(c):
    """The calls SLURM_Run_Workflow.py makes for one job that completes."""
    w = c.workflowTracker
    wf = w.initiate_workflow("Slurm Workflow", "BIOMERO's own\n2.8.2", 7, 8)
    t = w.add_task_to_workflow(wf, "_SLURM_Image_Transfer.py", "2.8.2", [1], {"IDs": [1]})
    w.start_task(t)
    w.complete_task(t, "exported")
    j = w.add_task_to_workflow(wf, "stardist", "v1.0", {"folder": "x"}, {"a": 1})
    w.start_task(j)
    w.add_job_id(j, "999001")
    w.update_task_status(j, "RUNNING")
    w.update_task_progress(j, "20%")
    w.update_task_status(j, "COMPLETED")
    w.complete_task(j, "Job 999001 is COMPLETED.")
    w.complete_workflow(wf)
    return {"workflow": str(wf)}


def record_many(c, n):
    """N imported runs recorded call by call, the tasks and statuses a biomero-stage run has."""
    import time
    w = c.workflowTracker
    started = time.perf_counter()
    for i in range(n):
        wf = w.initiate_workflow("Slurm Workflow", f"bench {i}", 52, 3)
        w.start_workflow(wf)
        for name, status in [("CONVERT_OMERO_TO_TIFF", "CONVERTING"),
                             ("_SLURM_Image_Transfer.py", "TRANSFERRING")]:
            t = w.add_task_to_workflow(wf, name, "bench", [1], {})
            w.start_task(t)
            w.update_task_status(t, status)
            w.complete_task(t, "done")
        run = w.add_task_to_workflow(wf, "SLURM_Run_Workflow.py", "bench", [1], {"diameter": 30})
        w.start_task(run)
        w.update_task_status(run, "RUNNING")
        job = w.add_task_to_workflow(wf, "cellpose", "v1.4.0", [1], {"diameter": 30})
        w.start_task(job)
        w.add_job_id(job, str(1000 + i))
        for p in ("20%", "60%", "90%"):
            w.update_task_progress(job, p)
            w.update_task_status(job, "RUNNING")
        w.update_task_status(job, "COMPLETED")
        w.complete_task(job, "Job is COMPLETED.")
        w.complete_task(run, "done")
        for name, status in [("SLURM_Get_Results.py", "RETRIEVING"),
                             ("SLURM_Import_Results.py", "IMPORTING")]:
            t = w.add_task_to_workflow(wf, name, "bench", [1], {})
            w.start_task(t)
            w.update_task_status(t, status)
            if status == "IMPORTING":
                w.update_task_status(t, "IMPORTED")
            w.complete_task(t, "done")
        w.complete_workflow(wf)
    seconds = time.perf_counter() - started
    with EngineManager.get_session() as s:
        from sqlalchemy import text
        events = s.execute(text("SELECT count(*) FROM workflowtracker_events")).scalar()
    return {"seconds": seconds, "events": events}


def launch(c, path):
    """What SLURM_Run_Workflow.py does in 2.9's detached mode, for each run in FILE."""
    from biomero import detached
    with open(path) as f:
        specs = json.load(f)
    w = c.workflowTracker
    out = []
    for spec in specs:
        class ScriptClient:
            """omero.scripts' client: only getInputs is read."""
            def getInputs(self, unwrap=False):
                return dict(spec["inputs"])
        wf = w.initiate_workflow("Slurm Workflow", spec.get("description", "detached run"),
                                 spec["user"], spec["group"])
        w.start_workflow(wf)
        task = detached.register_detached_launcher(
            ScriptClient(), w, wf, spec["script"], spec.get("version", "2.9.0b15"),
            spec["workflows"], spec.get("extra", {}))
        out.append({"workflow": str(wf), "launcher": str(task)})
    return out


def history(c, wf_id):
    from biomero import detached
    h = detached.load_task_history(c.workflowTracker, uuid.UUID(wf_id))
    rows = [{"name": e["name"], "task_id": str(e["task_id"]), "job_ids": e["job_ids"],
             "completed": e["completed"], "failed": e["failed"]} for e in h]
    names = [e["name"] for e in h]
    submitted = {}
    for n in names:
        job = detached.submitted_job(h, n, ("SLURM_Import_Results.py",))
        submitted[n] = None if job is None else [job[0], str(job[1])]
    return {"tasks": rows, "submitted_job": submitted}


def claim(c, task_id):
    from biomero import detached
    try:
        detached.claim_launcher_task(c.workflowTracker, uuid.UUID(task_id))
        return {"claimed": True}
    except Exception as e:  # the losing writer of a race: eventsourcing's IntegrityError
        return {"claimed": False, "error": type(e).__name__}


def main():
    url, cmd, *args = sys.argv[1:]
    if cmd == "rebuild":
        c = client(url, reset=True)
        result = views()
    else:
        c = client(url)
        if cmd == "views":
            result = views()
        elif cmd == "read":
            result = read(c, args)
        elif cmd == "reencode":
            result = reencode(c)
        elif cmd == "catch-up":
            result = catch_up(c)
        elif cmd == "record":
            result = record(c)
        elif cmd == "record-many":
            result = record_many(c, int(args[0]))
        elif cmd == "launch":
            result = launch(c, args[0])
        elif cmd == "history":
            result = history(c, args[0])
        elif cmd == "claim":
            result = claim(c, args[0])
        else:
            raise SystemExit(f"unknown command {cmd}")
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    EngineManager.close_engine()


if __name__ == "__main__":
    main()
