//! bilayers `config.yaml` descriptors.
//!
//! bilayers splits data `inputs` (images, files) from `parameters` (integer,
//! float, checkbox, radio, textbox, …). Parameters are named by `name`, labelled
//! by `label`, passed with `cli_tag`, and `radio`/`dropdown` options become the
//! allowed values. Parameters marked `output_dir_set` are the output folder
//! and are set by the server. Image inputs carry `format` and `subtype` lists,
//! which decide Zarr and plate input like biomero-schema's.

use serde_json::{Map, Value};

use super::{
    Descriptor, DescriptorFormat, Dialect, Header, ImageInput, bool_field, entries, list_field,
    number_kind, parameter, str_field, string_list,
};

/// bilayers' names for a parameter's fields.
const DIALECT: Dialect = Dialect {
    list: "parameters",
    id: "name",
    label: "label",
    default: "default",
    flag: "cli_tag",
    kind: number_kind,
    choices: options,
};

/// `radio` and `dropdown` options: their `value`s.
fn options(param: &Map<String, Value>) -> Option<Vec<Value>> {
    param.get("options").and_then(Value::as_array).map(|opts| {
        opts.iter()
            .filter_map(|o| o.get("value").cloned())
            .collect()
    })
}

pub(super) fn adapt(map: &Map<String, Value>) -> Result<Descriptor, String> {
    let mut image_inputs = Vec::new();
    for (i, input) in list_field(map, "inputs")?.iter().enumerate() {
        let Value::Object(input) = input else {
            return Err(format!("inputs[{i}] is not a mapping"));
        };
        if str_field(input, "type").eq_ignore_ascii_case("image") {
            image_inputs.push(ImageInput {
                id: str_field(input, "name"),
                formats: string_list(input.get("format")),
                subtypes: string_list(input.get("subtype")),
            });
        }
    }
    let parameters = entries(map, &DIALECT)?
        .into_iter()
        .filter(|(_, param)| !bool_field(param, "output_dir_set"))
        .map(|(id, param)| parameter(id, param, &DIALECT))
        .collect();
    let image = map.get("docker_image").and_then(Value::as_object);
    let container_image = image.and_then(|i| {
        let org = str_field(i, "org");
        let name = str_field(i, "name");
        (!name.is_empty()).then(|| {
            if org.is_empty() {
                name
            } else {
                format!("{org}/{name}")
            }
        })
    });
    let citation = map
        .get("citations")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(Value::as_object);
    Ok(Descriptor::adapted(
        DescriptorFormat::Bilayers,
        Header {
            name: citation
                .map(|c| str_field(c, "name"))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| str_field(map, "algorithm_folder_name")),
            description: citation
                .map(|c| str_field(c, "description"))
                .unwrap_or_default(),
            container_image,
            command_line: map
                .get("exec_function")
                .and_then(|e| e.get("cli_command"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        parameters,
        image_inputs,
    ))
}

#[cfg(test)]
mod tests {
    use crate::descriptor::{DescriptorFormat, ParamType, parse};
    use serde_json::json;

    const PLATE_BILAYERS: &str = r#"
citations:
  - name: "BilayersTest"
    description: "Bilayers test"
docker_image:
  org: torecluik
  name: w_bilayerstest
algorithm_folder_name: "W_BilayersTest"
exec_function:
  name: "generate_cli_command"
  cli_command: "python -m main.py"
inputs:
  - name: inputfile
    type: image
    subtype: [grayscale, plate]
    format: [tiff, omezarr]
    cli_tag: "--inputfile"
parameters:
  - name: pick_one
    type: radio
    options:
      - {label: "Option Alpha", value: alpha}
      - {label: "Option Beta", value: beta}
    default: alpha
    cli_tag: "--pick_one"
  - name: a_number
    type: float
    default: 1.0
    cli_tag: "--a_number"
  - name: flag
    type: checkbox
    default: false
    cli_tag: "--flag"
  - name: save_dir
    type: textbox
    output_dir_set: True
    cli_tag: "--savedir"
"#;

    #[test]
    fn bilayers_parameters_and_plate_input_are_read() {
        let d = parse(PLATE_BILAYERS.as_bytes(), "config.yaml").unwrap();
        assert_eq!(d.format, DescriptorFormat::Bilayers);
        assert_eq!(
            d.container_image.as_deref(),
            Some("torecluik/w_bilayerstest")
        );
        assert!(d.requires_plate && d.requires_zarr);
        let ids: Vec<&str> = d.parameters.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["pick_one", "a_number", "flag"]);
        let pick = d.parameter("pick_one").unwrap();
        assert_eq!(
            pick.choices.as_deref(),
            Some(&[json!("alpha"), json!("beta")][..])
        );
        assert_eq!(d.parameter("flag").unwrap().kind, ParamType::Boolean);
        assert_eq!(d.command_line.as_deref(), Some("python -m main.py"));
    }
}
