#!/usr/bin/env python
"""BIOMERO.importer's own order model and validator, driven for the tests.

The biomero-importer package (PyPI) is installed with --no-deps: its __init__
imports OMERO client libraries that cannot be installed here, so the two
modules that hold the order model (utils/ingest_tracker.py) and the order
validation (utils/upload_order_manager.py) are loaded from their files.

Usage:
  importer.py tables URL            create imports/imports_preprocessing with the importer's
                                    SQLAlchemy model (IngestTracker does create_all)
  importer.py orders URL UUID...    read each order back through the model, validate it with
                                    UploadOrderManager the way DatabasePoller does; print JSON
  importer.py serve URL SECONDS [--fail-destination N] [--reason TEXT]
                                    a test importer loop: poll like DatabasePoller (stage
                                    'Import Pending', id > last), append 'Import Started', validate,
                                    check every file exists, then append 'Import Completed' or
                                    'Import Failed' with a description; prints one JSON line per
                                    order handled
URL is a SQLAlchemy URL (postgresql+psycopg2://...).
"""
import importlib.util, json, logging, os, sys, time
from pathlib import Path

logging.basicConfig(level=logging.WARNING)


def load(name):
    spec = importlib.util.find_spec("biomero_importer")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("biomero-importer is not installed in this environment (scripts/setup-readers)")
    base = Path(list(spec.submodule_search_locations)[0]) / "utils"
    s = importlib.util.spec_from_file_location(f"bi_{name}", base / f"{name}.py")
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


it = load("ingest_tracker")
uom = load("upload_order_manager")


def tracker(url):
    os.environ.pop("INGEST_TRACKING_DB_URL", None)
    return it.IngestTracker({"ingest_tracking_db": url})


def order_dict(row):
    # exactly the dictionary DatabasePoller.poll_database builds from a row
    return {
        "Group": row.group_name,
        "Username": row.user_name,
        "UUID": row.uuid,
        "DestinationID": row.destination_id,
        "DestinationType": row.destination_type,
        "Files": row.files,
        "FileNames": row.file_names,
    }


def cmd_orders(url, uuids):
    t = tracker(url)
    T = it.IngestionTracking
    out = []
    with t.Session() as s:
        for u in uuids:
            rows = s.query(T).filter(T.uuid == u).order_by(T.id.asc()).all()
            entry = {"uuid": u, "stages": [r.stage for r in rows]}
            if rows:
                d = order_dict(rows[0])
                entry["row"] = {"file_names": rows[0].file_names, "destination_id": rows[0].destination_id}
                try:
                    m = uom.UploadOrderManager.from_order_record(dict(d), {})
                    entry["valid"] = True
                    entry["order"] = m.get_order_info()
                except Exception as e:  # the validator raises ValueError with its reason
                    entry["valid"] = False
                    entry["error"] = str(e)
            out.append(entry)
    print(json.dumps(out))


def logged(t, order, stage, tries=60):
    """Records `stage` for `order`, trying again while the database restarts. The importer's
    own `db_log_ingestion_event` (biomero-importer 1.x) returns None, the event lost, on errors
    it does not count as connection issues, such as "the database system is shutting down";
    an order handled while PostgreSQL restarts must still reach its stage."""
    for attempt in range(tries):
        try:
            row = t.db_log_ingestion_event(order, stage)
            if row is not None:
                return row
            error = "db_log_ingestion_event returned None (the event was not recorded)"
        except Exception as e:
            error = str(e)[:200]
        print(json.dumps({"log_error": error, "stage": stage, "attempt": attempt + 1}), flush=True)
        time.sleep(1)
    raise RuntimeError(f"cannot record {stage} for {order['UUID']}")


def cmd_serve(url, seconds, fail_destination, reason):
    t = tracker(url)
    T = it.IngestionTracking
    processed = set()
    last = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            with t.Session() as s:
                new = s.query(T).filter(T.stage == it.STAGE_NEW_ORDER, T.id > last).order_by(T.id.asc()).all()
                orders = [(r.id, order_dict(r)) for r in new]
        except Exception as e:  # the database restarting: poll again, as DatabasePoller does
            print(json.dumps({"poll_error": str(e)[:200]}), flush=True)
            time.sleep(1)
            continue
        for rid, d in orders:
            last = max(last, rid)
            if d["UUID"] in processed:
                continue
            processed.add(d["UUID"])
            logged(t, d, it.STAGE_INGEST_STARTED)
            try:
                info = uom.UploadOrderManager.from_order_record(dict(d), {}).get_order_info()
                missing = [f for f in info["Files"] if not os.path.exists(f)]
                if missing:
                    raise ValueError(f"files not found: {missing}")
                if fail_destination is not None and int(info["DestinationID"]) == fail_destination:
                    raise ValueError(reason)
                logged(t, d, it.STAGE_IMPORTED)
                print(json.dumps({"uuid": d["UUID"], "stage": it.STAGE_IMPORTED, "files": info["Files"]}), flush=True)
            except Exception as e:
                failed = dict(d)
                failed["Description"] = f"Import failed for data package {d['UUID']}: {e}"
                logged(t, failed, it.STAGE_INGEST_FAILED)
                print(json.dumps({"uuid": d["UUID"], "stage": it.STAGE_INGEST_FAILED, "error": str(e)}), flush=True)
        time.sleep(0.3)


if __name__ == "__main__":
    cmd, url = sys.argv[1], sys.argv[2]
    if cmd == "tables":
        tracker(url)
        print(json.dumps({"tables": ["imports", "imports_preprocessing"]}))
    elif cmd == "orders":
        cmd_orders(url, sys.argv[3:])
    elif cmd == "serve":
        args = sys.argv[4:]
        fd = int(args[args.index("--fail-destination") + 1]) if "--fail-destination" in args else None
        reason = args[args.index("--reason") + 1] if "--reason" in args else "the test importer was told to fail"
        cmd_serve(url, float(sys.argv[3]), fd, reason)
    else:
        sys.exit(__doc__)
