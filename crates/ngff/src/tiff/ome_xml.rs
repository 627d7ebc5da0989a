//! OME-XML for OME-TIFF: written into the first page's `ImageDescription`,
//! and parsed back from OME-TIFFs we are asked to convert.

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::axes::Sizes;
use crate::dtype::PixelType;

/// What the OME-XML of an image says about its pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct OmePixels {
    /// Image name.
    pub name: Option<String>,
    /// Sizes.
    pub sizes: Sizes,
    /// `XYZCT`, `XYCZT`, …
    pub dimension_order: String,
    /// Pixel type.
    pub dtype: Option<PixelType>,
    /// Physical sizes x, y, z in micrometres (converted from their units).
    pub physical_um: [Option<f64>; 3],
    /// Time increment in seconds.
    pub time_increment_s: Option<f64>,
    /// Channel names.
    pub channels: Vec<String>,
    /// Samples per pixel of the first channel (3 for interleaved RGB).
    pub samples_per_pixel: u32,
    /// Whether channel samples are interleaved within a page.
    pub interleaved: bool,
}

/// NGFF / UDUNITS unit name → OME unit symbol.
pub fn ome_unit(ngff: &str) -> &str {
    match ngff {
        "micrometer" => "µm",
        "nanometer" => "nm",
        "millimeter" => "mm",
        "centimeter" => "cm",
        "meter" => "m",
        "angstrom" => "Å",
        "second" => "s",
        "millisecond" => "ms",
        "microsecond" => "µs",
        "minute" => "min",
        "hour" => "h",
        other => other,
    }
}

fn to_micrometres(value: f64, unit: &str) -> f64 {
    match unit {
        "nm" | "nanometer" => value / 1000.0,
        "mm" | "millimeter" => value * 1000.0,
        "cm" | "centimeter" => value * 10_000.0,
        "m" | "meter" => value * 1_000_000.0,
        "Å" | "angstrom" => value / 10_000.0,
        _ => value,
    }
}

fn to_seconds(value: f64, unit: &str) -> f64 {
    match unit {
        "ms" | "millisecond" => value / 1000.0,
        "µs" | "microsecond" => value / 1_000_000.0,
        "min" | "minute" => value * 60.0,
        "h" | "hour" => value * 3600.0,
        _ => value,
    }
}

/// XML-escapes `s` and writes non-ASCII characters as character references,
/// so that the description fits TIFF's 7-bit ASCII tag type (`µm` → `&#181;m`).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => out.push_str(&format!("&#{};", u32::from(c))),
        }
    }
    out
}

/// Physical sizes to write: (value, NGFF unit) for x, y, z and t.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhysicalForXml {
    /// x.
    pub x: Option<(f64, String)>,
    /// y.
    pub y: Option<(f64, String)>,
    /// z.
    pub z: Option<(f64, String)>,
    /// t.
    pub t: Option<(f64, String)>,
}

/// OME-XML for one image written as pages in `dimension_order` (or interleaved RGB).
pub fn write(
    name: &str,
    sizes: Sizes,
    dtype: PixelType,
    dimension_order: &str,
    physical: &PhysicalForXml,
    channels: &[String],
    interleaved_rgb: bool,
) -> String {
    let mut attrs = format!(
        r#"ID="Pixels:0" DimensionOrder="{dimension_order}" Type="{}" SizeX="{}" SizeY="{}" SizeZ="{}" SizeC="{}" SizeT="{}" BigEndian="{}" Interleaved="{}" SignificantBits="{}""#,
        dtype.ome_name(),
        sizes.x,
        sizes.y,
        sizes.z,
        sizes.c,
        sizes.t,
        cfg!(target_endian = "big"),
        interleaved_rgb,
        dtype.size() * 8
    );
    for (axis, v) in [("X", &physical.x), ("Y", &physical.y), ("Z", &physical.z)] {
        if let Some((value, unit)) = v
            && value.is_finite()
            && *value > 0.0
        {
            attrs.push_str(&format!(
                r#" PhysicalSize{axis}="{value}" PhysicalSize{axis}Unit="{}""#,
                esc(ome_unit(unit))
            ));
        }
    }
    if let Some((value, unit)) = &physical.t
        && value.is_finite()
        && *value > 0.0
    {
        attrs.push_str(&format!(
            r#" TimeIncrement="{value}" TimeIncrementUnit="{}""#,
            esc(ome_unit(unit))
        ));
    }
    let mut body = String::new();
    if interleaved_rgb {
        body.push_str(&format!(
            r#"<Channel ID="Channel:0:0" SamplesPerPixel="{}"><LightPath/></Channel>"#,
            sizes.c
        ));
    } else {
        for c in 0..usize::try_from(sizes.c).unwrap_or(0) {
            let n = channels.get(c).cloned().unwrap_or_else(|| format!("C{c}"));
            body.push_str(&format!(
                r#"<Channel ID="Channel:0:{c}" Name="{}" SamplesPerPixel="1"><LightPath/></Channel>"#,
                esc(&n)
            ));
        }
    }
    let ifds = if interleaved_rgb {
        sizes.t * sizes.z
    } else {
        sizes.planes()
    };
    body.push_str(&format!(r#"<TiffData IFD="0" PlaneCount="{ifds}"/>"#));
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" "#,
            r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" "#,
            r#"xsi:schemaLocation="http://www.openmicroscopy.org/Schemas/OME/2016-06 http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd" "#,
            r#"Creator="biomero-stage {}">"#,
            r#"<Image ID="Image:0" Name="{}"><Pixels {}>{}</Pixels></Image></OME>"#
        ),
        env!("CARGO_PKG_VERSION"),
        esc(name),
        attrs,
        body
    )
}

/// Parses the first image's pixels from OME-XML; `None` when it is not OME-XML.
pub fn parse(xml: &str) -> Option<OmePixels> {
    if !xml.contains("<OME") {
        return None;
    }
    let mut reader = Reader::from_str(xml);
    let mut name = None;
    let mut pixels: Option<OmePixels> = None;
    let mut in_first_image = false;
    let mut images = 0;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                let local = e.local_name();
                let tag = std::str::from_utf8(local.as_ref()).unwrap_or("");
                let attr = |k: &str| {
                    e.attributes().flatten().find_map(|a| {
                        (a.key.local_name().as_ref() == k.as_bytes())
                            .then(|| a.unescape_value().ok().map(std::borrow::Cow::into_owned))
                            .flatten()
                    })
                };
                match tag {
                    "Image" => {
                        images += 1;
                        in_first_image = images == 1;
                        if in_first_image {
                            name = attr("Name");
                        }
                    }
                    "Pixels" if in_first_image && pixels.is_none() => {
                        let n = |k: &str| attr(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
                        let phys = |k: &str| {
                            let v = attr(&format!("PhysicalSize{k}"))?.parse::<f64>().ok()?;
                            let unit = attr(&format!("PhysicalSize{k}Unit"))
                                .unwrap_or_else(|| "µm".into());
                            Some(to_micrometres(v, &unit))
                        };
                        pixels = Some(OmePixels {
                            name: name.clone(),
                            sizes: Sizes {
                                t: n("SizeT"),
                                c: n("SizeC"),
                                z: n("SizeZ"),
                                y: n("SizeY"),
                                x: n("SizeX"),
                            },
                            dimension_order: attr("DimensionOrder")
                                .unwrap_or_else(|| "XYCZT".into()),
                            dtype: attr("Type").and_then(|t| PixelType::parse(&t)),
                            physical_um: [phys("X"), phys("Y"), phys("Z")],
                            time_increment_s: attr("TimeIncrement")
                                .and_then(|v| v.parse::<f64>().ok())
                                .map(|v| {
                                    to_seconds(
                                        v,
                                        &attr("TimeIncrementUnit").unwrap_or_else(|| "s".into()),
                                    )
                                }),
                            channels: Vec::new(),
                            samples_per_pixel: 1,
                            interleaved: attr("Interleaved").is_some_and(|v| v == "true"),
                        });
                    }
                    "Channel" if in_first_image => {
                        if let Some(p) = pixels.as_mut() {
                            let idx = p.channels.len();
                            p.channels
                                .push(attr("Name").unwrap_or_else(|| format!("C{idx}")));
                            if idx == 0 {
                                p.samples_per_pixel = attr("SamplesPerPixel")
                                    .and_then(|v| v.parse().ok())
                                    .unwrap_or(1);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == b"Image" => in_first_image = false,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_xml_parses_back() {
        let sizes = Sizes {
            t: 2,
            c: 3,
            z: 4,
            y: 5,
            x: 6,
        };
        let xml = write(
            "a & <b>",
            sizes,
            PixelType::Uint16,
            "XYCZT",
            &PhysicalForXml {
                x: Some((0.1625, "micrometer".into())),
                y: Some((0.1625, "micrometer".into())),
                z: Some((500.0, "nanometer".into())),
                t: None,
            },
            &["DAPI".into(), "GFP".into()],
            false,
        );
        let p = parse(&xml).unwrap();
        assert_eq!(p.sizes, sizes);
        assert_eq!(p.name.as_deref(), Some("a & <b>"));
        assert_eq!(p.dtype, Some(PixelType::Uint16));
        assert_eq!(p.physical_um, [Some(0.1625), Some(0.1625), Some(0.5)]);
        assert_eq!(p.channels, ["DAPI", "GFP", "C2"]);
        assert_eq!(p.dimension_order, "XYCZT");
        assert!(xml.is_ascii());
        assert!(parse("{\"shape\": [1]}").is_none());
    }
}
