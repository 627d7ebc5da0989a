//! BIAFLOWS / Cytomine `cytomine-0.1` descriptors.
//!
//! Inputs whose id starts with `cytomine` belong to the Cytomine server and are
//! dropped; `Number` becomes an integer unless its default is a float; the
//! command-line flag `--@id` is expanded. BIAFLOWS declares no image inputs:
//! these workflows read a flat folder of TIFFs by convention, so nothing here
//! can ask for Zarr.

use serde_json::{Map, Value};

use super::{
    BIAFLOWS_FIELDS, Descriptor, DescriptorFormat, biaflows_descriptor, bool_field, entries,
    parameter,
};

pub(super) fn adapt(map: &Map<String, Value>) -> Result<Descriptor, String> {
    let parameters = entries(map, &BIAFLOWS_FIELDS)?
        .into_iter()
        .filter(|(id, input)| !id.starts_with("cytomine") && !bool_field(input, "set-by-server"))
        .map(|(id, input)| parameter(id, input, &BIAFLOWS_FIELDS))
        .collect();
    Ok(biaflows_descriptor(
        map,
        DescriptorFormat::Biaflows,
        parameters,
        Vec::new(),
    ))
}

#[cfg(test)]
mod tests {
    use crate::descriptor::{ParamType, parse};

    const CELLPOSE: &str = r#"{
      "name": "NucleiSegmentation-Cellpose",
      "description": "cellpose",
      "container-image": {"image": "torecluik/w_nucleisegmentation-cellpose", "type": "singularity"},
      "command-line": "python wrapper.py CYTOMINE_HOST DIAMETER",
      "schema-version": "cytomine-0.1",
      "inputs": [
        {"id": "cytomine_host", "value-key": "@ID", "command-line-flag": "--@id", "name": "host", "set-by-server": true, "optional": false, "type": "String"},
        {"id": "diameter", "value-key": "@ID", "command-line-flag": "--@id", "name": "Diameter", "description": "0 = auto", "default-value": 0, "optional": true, "type": "Number"},
        {"id": "prob_threshold", "value-key": "@ID", "command-line-flag": "--@id", "name": "Prob", "default-value": 0.5, "optional": true, "type": "Number"},
        {"id": "use_gpu", "value-key": "@ID", "command-line-flag": "--@id", "name": "GPU", "default-value": true, "type": "Boolean"},
        {"id": "model_type", "value-key": "@ID", "command-line-flag": "--@id", "name": "Model", "default-value": "nuclei", "type": "String", "value-choices": ["nuclei", "cyto"]}
      ]
    }"#;

    #[test]
    fn cytomine_inputs_are_dropped_and_numbers_typed_by_default() {
        let d = parse(CELLPOSE.as_bytes(), "descriptor.json").unwrap();
        let ids: Vec<&str> = d.parameters.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["diameter", "prob_threshold", "use_gpu", "model_type"]);
        assert_eq!(d.parameter("diameter").unwrap().kind, ParamType::Integer);
        assert_eq!(
            d.parameter("prob_threshold").unwrap().kind,
            ParamType::Float
        );
        assert_eq!(d.parameter("diameter").unwrap().flag, "--diameter");
        assert_eq!(d.parameter("diameter").unwrap().env_name(), "DIAMETER");
        assert!(d.parameter("model_type").unwrap().choices.is_some());
        assert!(!d.requires_zarr && !d.requires_plate);
        assert_eq!(
            d.container_image.as_deref(),
            Some("torecluik/w_nucleisegmentation-cellpose")
        );
    }
}
