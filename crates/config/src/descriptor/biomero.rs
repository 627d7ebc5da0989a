//! BIOMERO's own `biomero-0.1` descriptor schema.
//!
//! Inputs carry a `type`; `image` (and `file`, `array`, …) inputs are data the
//! staging engine provides, with `format` and `sub-type` saying what they
//! accept, and the rest are parameters. An image input with a Zarr format or a
//! `plate` sub-type makes the workflow require Zarr; `plate` makes it require a
//! plate.

use serde_json::{Map, Value};

use super::{
    BIAFLOWS_FIELDS, Descriptor, DescriptorFormat, FileInput, ImageInput, biaflows_descriptor,
    bool_field, entries, parameter, str_field, string_list,
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
    let mut file_inputs = Vec::new();
    for (id, input) in entries(map, &BIAFLOWS_FIELDS)? {
        let ty = str_field(input, "type").to_ascii_lowercase();
        if ty == "image" {
            image_inputs.push(ImageInput {
                id,
                formats: string_list(input.get("format")),
                subtypes: string_list(input.get("sub-type")),
            });
        } else if DATA_TYPES.contains(&ty.as_str()) && bool_field(input, "file-attachment") {
            file_inputs.push(FileInput {
                name: str_field(input, "name"),
                description: str_field(input, "description"),
                formats: string_list(input.get("format"))
                    .into_iter()
                    .map(|f| f.trim_start_matches('.').to_ascii_lowercase())
                    .collect(),
                optional: bool_field(input, "optional"),
                id,
            });
        } else if !DATA_TYPES.contains(&ty.as_str()) && !bool_field(input, "set-by-server") {
            parameters.push(parameter(id, input, &BIAFLOWS_FIELDS));
        }
    }
    let mut d = biaflows_descriptor(
        map,
        DescriptorFormat::BiomeroSchema,
        parameters,
        image_inputs,
    );
    d.file_inputs = file_inputs;
    Ok(d)
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

        let files = r#"{"schema-version":"biomero-0.1","name":"f","inputs":[{"id":"model","type":"file","file-attachment":true,"format":[".npy","PT"],"optional":false,"name":"Model"},{"id":"out","type":"file","set-by-server":true}]}"#;
        let d = parse(files.as_bytes(), "d").unwrap();
        assert_eq!(
            d.file_inputs.len(),
            1,
            "set-by-server files are the engine's"
        );
        let f = &d.file_inputs[0];
        assert_eq!((f.id.as_str(), f.optional), ("model", false));
        assert!(f.accepts("weights.NPY") && f.accepts("m.pt") && !f.accepts("m.zip"));
        assert!(d.parameters.is_empty());

        let tiff = r#"{"schema-version":"biomero-0.1","name":"t","inputs":[{"id":"in","type":"image","format":["tif","ometiff"]}]}"#;
        let d = parse(tiff.as_bytes(), "d").unwrap();
        assert!(!d.requires_zarr && !d.requires_plate);
    }
}
