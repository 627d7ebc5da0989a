//! BIOMERO's own `biomero-0.1` descriptor schema.
//!
//! Inputs carry a `type`; `image` (and `file`, `array`, …) inputs are data the
//! staging engine provides, with `format` and `sub-type` saying what they
//! accept, and the rest are parameters. An image input with a Zarr format or a
//! `plate` sub-type makes the workflow require Zarr; `plate` makes it require a
//! plate.

use serde_json::{Map, Value};

use super::{
    BIAFLOWS_FIELDS, Descriptor, DescriptorFormat, ImageInput, biaflows_descriptor, bool_field,
    entries, parameter, str_field, string_list,
};

/// Input types that are data, not parameters.
const DATA_TYPES: [&str; 6] = [
    "image",
    "file",
    "array",
    "measurement",
    "executable",
    "directory",
];

pub(super) fn adapt(map: &Map<String, Value>) -> Result<Descriptor, String> {
    let mut parameters = Vec::new();
    let mut image_inputs = Vec::new();
    for (id, input) in entries(map, &BIAFLOWS_FIELDS)? {
        let ty = str_field(input, "type").to_ascii_lowercase();
        if ty == "image" {
            image_inputs.push(ImageInput {
                id,
                formats: string_list(input.get("format")),
                subtypes: string_list(input.get("sub-type")),
            });
        } else if !DATA_TYPES.contains(&ty.as_str()) && !bool_field(input, "set-by-server") {
            parameters.push(parameter(id, input, &BIAFLOWS_FIELDS));
        }
    }
    Ok(biaflows_descriptor(
        map,
        DescriptorFormat::BiomeroSchema,
        parameters,
        image_inputs,
    ))
}

#[cfg(test)]
mod tests {
    use crate::descriptor::{DescriptorFormat, parse};

    #[test]
    fn zarr_and_plate_inputs_set_the_requirements() {
        let plate = r#"{"schema-version":"biomero-0.1","name":"p","container-image":{"image":"o/p","type":"docker"},
          "inputs":[{"id":"input","type":"image","format":["zarr"],"sub-type":["plate"]},
                    {"id":"channel","type":"integer","default-value":0,"command-line-flag":"--channel"}]}"#;
        let d = parse(plate.as_bytes(), "d").unwrap();
        assert_eq!(d.format, DescriptorFormat::BiomeroSchema);
        assert!(d.requires_zarr && d.requires_plate);
        assert_eq!(d.parameters.len(), 1);

        let zarr = r#"{"schema-version":"biomero-0.1","name":"z","inputs":[{"id":"in","type":"image","format":"ome.zarr"}]}"#;
        let d = parse(zarr.as_bytes(), "d").unwrap();
        assert!(d.requires_zarr && !d.requires_plate);

        let tiff = r#"{"schema-version":"biomero-0.1","name":"t","inputs":[{"id":"in","type":"image","format":["tif","ometiff"]}]}"#;
        let d = parse(tiff.as_bytes(), "d").unwrap();
        assert!(!d.requires_zarr && !d.requires_plate);
    }
}
