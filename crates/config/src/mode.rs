//! The input mode of a workflow, decided exactly as OMERO.biomero decides it.
//!
//! ```text
//! supports_plates = k in [UI].plate_workflows  or descriptor requires-plate
//! supports_images = not supports_plates        or k in [UI].dual_mode_workflows
//! requires_zarr   = k in [UI].zarr_workflows   or descriptor requires-zarr or supports_plates
//! ```
//!
//! The Zarr modes need the BIOMERO.importer integration (`importer_enabled`):
//! without it the toggles have no effect and every workflow gets TIFFs, plates
//! flattened to one TIFF per field (BIOMERO's behaviour before 2.4).

use std::fmt;

use serde::Serialize;

/// What is staged into `data/in` for one submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputMode {
    /// One TIFF per image, a flat folder (standard BIAFLOWS workflows).
    Tiff,
    /// One OME-Zarr per image.
    Zarr,
    /// One HCS OME-Zarr per plate.
    ZarrPlate,
}

impl fmt::Display for InputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputMode::Tiff => "tiff",
            InputMode::Zarr => "zarr",
            InputMode::ZarrPlate => "zarr-plate",
        })
    }
}

/// The facts OMERO.biomero's decision is made of, and the modes that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModeDecision {
    /// Plates may be submitted as plates.
    pub supports_plates: bool,
    /// Images and datasets may be submitted.
    pub supports_images: bool,
    /// Inputs are staged as Zarr.
    pub requires_zarr: bool,
    /// Whether the importer integration is on (without it, all of the above collapse to TIFF).
    pub importer_enabled: bool,
}

/// What the toggles and the descriptor say about one workflow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModeInputs {
    /// In `[UI] zarr_workflows`.
    pub zarr_toggle: bool,
    /// In `[UI] plate_workflows`.
    pub plate_toggle: bool,
    /// In `[UI] dual_mode_workflows`.
    pub dual_toggle: bool,
    /// The descriptor has a Zarr (or plate) image input.
    pub descriptor_requires_zarr: bool,
    /// The descriptor has a plate image input.
    pub descriptor_requires_plate: bool,
}

impl ModeDecision {
    /// Applies OMERO.biomero's rule.
    pub fn decide(inputs: ModeInputs, importer_enabled: bool) -> Self {
        if !importer_enabled {
            return ModeDecision {
                supports_plates: false,
                supports_images: true,
                requires_zarr: false,
                importer_enabled,
            };
        }
        let supports_plates = inputs.plate_toggle || inputs.descriptor_requires_plate;
        let supports_images = !supports_plates || inputs.dual_toggle;
        let requires_zarr =
            inputs.zarr_toggle || inputs.descriptor_requires_zarr || supports_plates;
        ModeDecision {
            supports_plates,
            supports_images,
            requires_zarr,
            importer_enabled,
        }
    }

    /// The mode for images and datasets, if they are accepted.
    pub fn image_mode(&self) -> Option<InputMode> {
        self.supports_images.then_some(if self.requires_zarr {
            InputMode::Zarr
        } else {
            InputMode::Tiff
        })
    }

    /// The mode for plates and screens, if they are accepted: whole plates for
    /// plate workflows, flattened to one TIFF per field for TIFF workflows.
    pub fn plate_mode(&self) -> Option<InputMode> {
        if self.supports_plates {
            Some(InputMode::ZarrPlate)
        } else if self.image_mode() == Some(InputMode::Tiff) {
            Some(InputMode::Tiff)
        } else {
            None
        }
    }

    /// The workflow's main mode (plate mode for plate workflows).
    pub fn primary(&self) -> InputMode {
        if self.supports_plates {
            InputMode::ZarrPlate
        } else {
            self.image_mode().unwrap_or(InputMode::Tiff)
        }
    }

    /// A short human description of what may be submitted.
    pub fn accepts(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.image_mode() {
            parts.push(format!("images/datasets as {m}"));
        }
        match self.plate_mode() {
            Some(InputMode::ZarrPlate) => parts.push("plates as HCS zarr".to_owned()),
            Some(m) => parts.push(format!("plates flattened to {m}")),
            None => {}
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(i: ModeInputs) -> ModeDecision {
        ModeDecision::decide(i, true)
    }

    #[test]
    fn default_is_tiff_for_everything() {
        let m = d(ModeInputs::default());
        assert_eq!(m.primary(), InputMode::Tiff);
        assert_eq!(m.image_mode(), Some(InputMode::Tiff));
        assert_eq!(m.plate_mode(), Some(InputMode::Tiff));
    }

    #[test]
    fn zarr_toggle_gives_zarr_images_and_refuses_plates() {
        let m = d(ModeInputs {
            zarr_toggle: true,
            ..Default::default()
        });
        assert_eq!(m.primary(), InputMode::Zarr);
        assert_eq!(m.plate_mode(), None);
    }

    #[test]
    fn plate_toggle_implies_zarr_and_plates_only() {
        let m = d(ModeInputs {
            plate_toggle: true,
            ..Default::default()
        });
        assert!(m.requires_zarr);
        assert_eq!(m.primary(), InputMode::ZarrPlate);
        assert_eq!(m.image_mode(), None);
    }

    #[test]
    fn dual_mode_plate_workflows_take_zarr_images_too() {
        let m = d(ModeInputs {
            plate_toggle: true,
            dual_toggle: true,
            ..Default::default()
        });
        assert_eq!(m.image_mode(), Some(InputMode::Zarr));
        assert_eq!(m.plate_mode(), Some(InputMode::ZarrPlate));
    }

    #[test]
    fn descriptor_requirements_count_like_toggles() {
        let m = d(ModeInputs {
            descriptor_requires_plate: true,
            descriptor_requires_zarr: true,
            ..Default::default()
        });
        assert_eq!(m.primary(), InputMode::ZarrPlate);
        let m = d(ModeInputs {
            descriptor_requires_zarr: true,
            ..Default::default()
        });
        assert_eq!(m.primary(), InputMode::Zarr);
    }

    #[test]
    fn without_the_importer_every_toggle_collapses_to_tiff() {
        let m = ModeDecision::decide(
            ModeInputs {
                zarr_toggle: true,
                plate_toggle: true,
                descriptor_requires_plate: true,
                ..Default::default()
            },
            false,
        );
        assert_eq!(m.primary(), InputMode::Tiff);
        assert_eq!(m.plate_mode(), Some(InputMode::Tiff));
    }
}
