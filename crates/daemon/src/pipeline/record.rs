//! Step records: what each step keeps under `data[<step>]` for the steps after
//! it, as a typed, versioned `serde` struct owned by the step that writes it.
//!
//! A later step reads an earlier one's record through its type
//! ([`StepRecord::read`]), never by key. Every record carries `version`
//! ([`StepRecord::VERSION`]); a record without one was written by a release
//! before versioning and is read as version 1 (the same shape). A record of a
//! newer version than this build knows is refused with a message that says
//! so, instead of being half-read.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use stage_store::Submission;

use super::{FailureKind, Step, StepOutcome};

/// The record kept by one step.
pub trait StepRecord: Serialize + DeserializeOwned {
    /// The step that writes it (its key in `data`).
    const STEP: Step;
    /// The shape's version; raise it with a change a previous reader cannot read.
    const VERSION: u64 = 1;

    /// The record of `s`, or the failure that says why it cannot be had.
    fn read(s: &Submission) -> Result<Self, StepOutcome> {
        let step = Self::STEP.name();
        let Some(v) = s.data.get(step) else {
            return Err(StepOutcome::failed(
                FailureKind::Record,
                format!(
                    "the `{step}` step recorded nothing; the submission's history is incomplete"
                ),
            ));
        };
        let version = v.get("version").and_then(Value::as_u64).unwrap_or(1);
        if version > Self::VERSION {
            return Err(StepOutcome::failed(
                FailureKind::Record,
                format!(
                    "the `{step}` record is version {version}, written by a newer biomero-stage (this one reads up to {}); run the newer release",
                    Self::VERSION
                ),
            ));
        }
        serde_json::from_value(v.clone()).map_err(|e| {
            StepOutcome::failed(
                FailureKind::Record,
                format!("the `{step}` record cannot be read: {e}"),
            )
        })
    }

    /// The record as kept, with its version.
    fn to_value(&self) -> Result<Value, StepOutcome> {
        let mut v = serde_json::to_value(self).map_err(|e| {
            StepOutcome::failed(
                FailureKind::Record,
                format!("the `{}` record cannot be written: {e}", Self::STEP.name()),
            )
        })?;
        if let Value::Object(m) = &mut v {
            m.insert("version".into(), Value::from(Self::VERSION));
        }
        Ok(v)
    }

    /// The step is done with this record; `last` ends the pipeline here.
    fn done(&self, last: bool) -> StepOutcome {
        match self.to_value() {
            Ok(result) => StepOutcome::Done { result, last },
            Err(o) => o,
        }
    }
}

/// The plan step's record is the plan itself.
impl StepRecord for stage_source::Plan {
    const STEP: Step = Step::Plan;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::pipeline::steps::collect::CollectRecord;
    use crate::pipeline::steps::follow::FollowRecord;
    use crate::pipeline::steps::import::ImportRecord;
    use crate::pipeline::steps::stage::StageRecord;
    use crate::pipeline::steps::submit::SubmitRecord;
    use crate::pipeline::steps::upload::UploadRecord;

    /// Three demo submissions (tiff, zarr, zarr-plate; local executor) as
    /// `status --json` of main 67970d7, the last release without step records, printed them.
    const LOCAL: &str = include_str!("fixtures/records-main-67970d7-local.json");
    /// One Slurm-executed, imported submission in the shapes main 67970d7's
    /// steps write for the Slurm executor and tar-over-ssh (`exit_code` as text,
    /// `import` with its orders).
    const SLURM: &str = include_str!("fixtures/records-main-67970d7-slurm.json");

    fn submissions() -> Vec<Submission> {
        let mut all: Vec<Submission> = serde_json::from_str(LOCAL).unwrap();
        all.extend(serde_json::from_str::<Vec<Submission>>(SLURM).unwrap());
        all
    }

    /// Reads a record, writes it back, and checks nothing but `version` changed.
    fn round_trip<T: StepRecord + std::fmt::Debug + PartialEq>(s: &Submission) -> T {
        let r = T::read(s).unwrap_or_else(|o| panic!("{}: {o:?}", s.id));
        let mut written = r.to_value().unwrap();
        assert_eq!(written["version"], T::VERSION);
        written.as_object_mut().unwrap().remove("version");
        let old = &s.data[T::STEP.name()];
        for (k, v) in written.as_object().unwrap() {
            let was = old.get(k).unwrap_or(&Value::Null);
            // a local job's exit code was a number; it is text now, with the same digits
            if k == "exit_code" {
                assert_eq!(v.as_str().unwrap(), was.to_string().trim_matches('"'));
            } else {
                assert_eq!(v, was, "{}: `{k}` of the {} record", s.id, T::STEP.name());
            }
        }
        r
    }

    #[test]
    fn records_written_by_the_previous_release_still_resume() {
        let all = submissions();
        assert_eq!(all.len(), 4);
        for s in &all {
            let plan = round_trip::<stage_source::Plan>(s);
            let stage = round_trip::<StageRecord>(s);
            assert_eq!(stage.outputs, plan.images.len() + plan.plates.len());
            let upload = round_trip::<UploadRecord>(s);
            assert!(!upload.prep_only);
            let submit = round_trip::<SubmitRecord>(s);
            let follow = round_trip::<FollowRecord>(s);
            assert_eq!(follow.job_id, submit.job_id);
            let collect = round_trip::<CollectRecord>(s);
            assert!(collect.manifest.starts_with(&collect.kept));
        }
        let slurm = &all[3];
        assert_eq!(FollowRecord::read(slurm).unwrap().exit_code, "0:0");
        assert_eq!(SubmitRecord::read(slurm).unwrap().executor, "slurm");
        let import = round_trip::<ImportRecord>(slurm);
        assert_eq!(import.orders.len(), 1);
        assert_eq!(import.stages[0].stage, "Import Completed");
    }

    #[test]
    fn a_missing_a_damaged_or_a_newer_record_fails_with_what_to_do() {
        let mut s = submissions().remove(0);
        let reason = |o: StepOutcome| match o {
            StepOutcome::Failed { kind, reason, .. } => {
                assert_eq!(kind, FailureKind::Record);
                reason
            }
            other => panic!("{other:?}"),
        };
        assert!(
            reason(ImportRecord::read(&s).unwrap_err()).contains("recorded nothing"),
            "the demo stops before import"
        );
        s.data["submit"]["job_id"] = Value::from("seven");
        assert!(reason(SubmitRecord::read(&s).unwrap_err()).contains("cannot be read"));
        s.data["stage"]["version"] = Value::from(StageRecord::VERSION + 1);
        assert!(reason(StageRecord::read(&s).unwrap_err()).contains("newer biomero-stage"));
    }
}
