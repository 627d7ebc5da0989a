//! OME-XML for OME-TIFF: written into the first page's `ImageDescription`,
//! and parsed back from OME-TIFFs we are asked to convert — every image
//! (series) of a file, where each plane is stored (`TiffData`, in this file
//! or another file of a multi-file fileset), channel colours and the display
//! windows biomero-stage writes.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::axes::Sizes;
use crate::dtype::PixelType;
use crate::write::attrs::ChannelSpec;

/// The namespace of the map annotation that carries display windows (OME-XML has no
/// attribute for them): one entry per channel, key the channel index, value `start,end`.
pub const WINDOW_NAMESPACE: &str = "biomero-stage/display-window";

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
    /// Channel colours, `RRGGBB` (from the signed RGBA `Color`), one per channel.
    pub colors: Vec<Option<String>>,
    /// Display windows (start, end), one per channel.
    pub windows: Vec<Option<(f64, f64)>>,
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

/// OME's `Color`: RGBA packed in a signed 32-bit integer, from `RRGGBB` (opaque).
pub fn ome_color(rrggbb: &str) -> Option<i32> {
    let hex = rrggbb.trim_start_matches('#');
    if hex.len() != 6 {
        return None;
    }
    let rgb = u32::from_str_radix(hex, 16).ok()?;
    Some(i32::from_ne_bytes(((rgb << 8) | 0xFF).to_ne_bytes()))
}

/// `RRGGBB` from OME's signed RGBA `Color`.
pub fn color_hex(ome: i32) -> String {
    let v = u32::from_ne_bytes(ome.to_ne_bytes());
    format!("{:06X}", v >> 8)
}

/// OME-XML for one image written as pages in `dimension_order` (or interleaved RGB): each
/// channel with its name and colour, the display windows in a map annotation
/// ([`WINDOW_NAMESPACE`]).
pub fn write(
    name: &str,
    sizes: Sizes,
    dtype: PixelType,
    dimension_order: &str,
    physical: &PhysicalForXml,
    channels: &[ChannelSpec],
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
    let mut windows = String::new();
    if interleaved_rgb {
        body.push_str(&format!(
            r#"<Channel ID="Channel:0:0" SamplesPerPixel="{}"><LightPath/></Channel>"#,
            sizes.c
        ));
    } else {
        for c in 0..usize::try_from(sizes.c).unwrap_or(0) {
            let spec = channels.get(c);
            let n = spec.map_or_else(|| format!("C{c}"), |s| s.label.clone());
            let color = spec
                .and_then(|s| ome_color(&s.color))
                .map(|v| format!(r#" Color="{v}""#))
                .unwrap_or_default();
            body.push_str(&format!(
                r#"<Channel ID="Channel:0:{c}" Name="{}"{color} SamplesPerPixel="1"><LightPath/></Channel>"#,
                esc(&n)
            ));
            if let Some((start, end)) = spec.and_then(|s| s.window)
                && start.is_finite()
                && end.is_finite()
            {
                windows.push_str(&format!(r#"<M K="{c}">{start},{end}</M>"#));
            }
        }
    }
    let ifds = if interleaved_rgb {
        sizes.t * sizes.z
    } else {
        sizes.planes()
    };
    body.push_str(&format!(r#"<TiffData IFD="0" PlaneCount="{ifds}"/>"#));
    let (annotation_ref, annotations) = if windows.is_empty() {
        (String::new(), String::new())
    } else {
        (
            r#"<AnnotationRef ID="Annotation:0"/>"#.to_owned(),
            format!(
                r#"<StructuredAnnotations><MapAnnotation ID="Annotation:0" Namespace="{WINDOW_NAMESPACE}"><Value>{windows}</Value></MapAnnotation></StructuredAnnotations>"#
            ),
        )
    };
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" "#,
            r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" "#,
            r#"xsi:schemaLocation="http://www.openmicroscopy.org/Schemas/OME/2016-06 http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd" "#,
            r#"Creator="biomero-stage {}">"#,
            r#"<Image ID="Image:0" Name="{}"><Pixels {}>{}</Pixels>{}</Image>{}</OME>"#
        ),
        env!("CARGO_PKG_VERSION"),
        esc(name),
        attrs,
        body,
        annotation_ref,
        annotations
    )
}

/// A `TiffData` block: `plane_count` planes from `first` (z, c, t) on, in the pixels'
/// dimension order, stored from page `ifd` on of this file or of `file_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiffDataBlock {
    /// The first page (IFD index) holding them.
    pub ifd: u64,
    /// The first plane's (z, c, t).
    pub first: (u64, u64, u64),
    /// How many planes (`None`: one when `IFD` is given, else all).
    pub plane_count: Option<u64>,
    /// Whether the block named its first IFD (`IFD` attribute present).
    pub has_ifd: bool,
    /// The file holding the pages (`UUID`'s `FileName`), when another file of the fileset.
    pub file_name: Option<String>,
}

/// One image (series) of an OME-XML document.
#[derive(Debug, Clone, PartialEq)]
pub struct OmeImage {
    /// Its pixels.
    pub pixels: OmePixels,
    /// Where its planes are stored.
    pub tiff_data: Vec<TiffDataBlock>,
}

/// An OME-XML document: its images in order, or, for a file of a multi-file fileset that
/// holds only pixels, the file holding the metadata (`BinaryOnly`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OmeDocument {
    /// The images (series 0, 1, …).
    pub images: Vec<OmeImage>,
    /// `BinaryOnly`'s `MetadataFile`.
    pub metadata_file: Option<String>,
}

/// The value of attribute `k` of `e`, unescaped.
fn attribute(e: &BytesStart<'_>, k: &str) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == k.as_bytes())
            .then(|| a.unescape_value().ok().map(std::borrow::Cow::into_owned))
            .flatten()
    })
}

fn pixels_of(e: &BytesStart<'_>, name: Option<String>) -> OmePixels {
    let attr = |k: &str| attribute(e, k);
    let n = |k: &str| attr(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
    let phys = |k: &str| {
        let v = attr(&format!("PhysicalSize{k}"))?.parse::<f64>().ok()?;
        let unit = attr(&format!("PhysicalSize{k}Unit")).unwrap_or_else(|| "µm".into());
        Some(to_micrometres(v, &unit))
    };
    OmePixels {
        name,
        sizes: Sizes {
            t: n("SizeT"),
            c: n("SizeC"),
            z: n("SizeZ"),
            y: n("SizeY"),
            x: n("SizeX"),
        },
        dimension_order: attr("DimensionOrder").unwrap_or_else(|| "XYCZT".into()),
        dtype: attr("Type").and_then(|t| PixelType::parse(&t)),
        physical_um: [phys("X"), phys("Y"), phys("Z")],
        time_increment_s: attr("TimeIncrement")
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| to_seconds(v, &attr("TimeIncrementUnit").unwrap_or_else(|| "s".into()))),
        channels: Vec::new(),
        colors: Vec::new(),
        windows: Vec::new(),
        samples_per_pixel: 1,
        interleaved: attr("Interleaved").is_some_and(|v| v == "true"),
    }
}

/// Where the parser is inside the document.
#[derive(Default)]
struct Cursor {
    image_name: Option<String>,
    in_image: bool,
    /// The open map annotation is a window annotation, and which entry key is open.
    window_ns: bool,
    window_key: Option<usize>,
    /// The image that references the open annotation (by `AnnotationRef`), by annotation id.
    annotation_refs: Vec<(String, usize)>,
    annotation_id: Option<String>,
    windows: Vec<(String, usize, String)>,
}

/// Parses every image of an OME-XML document; `None` when it is not OME-XML.
pub fn parse_document(xml: &str) -> Option<OmeDocument> {
    if !xml.contains("<OME") {
        return None;
    }
    let mut reader = Reader::from_str(xml);
    let mut doc = OmeDocument::default();
    let mut cur = Cursor::default();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => start(&e, false, &mut doc, &mut cur),
            Ok(Event::Empty(e)) => start(&e, true, &mut doc, &mut cur),
            Ok(Event::Text(t)) => {
                let text = t
                    .decode()
                    .map(std::borrow::Cow::into_owned)
                    .unwrap_or_default();
                if let Some(k) = cur.window_key
                    && let Some(id) = &cur.annotation_id
                {
                    cur.windows.push((id.clone(), k, text));
                }
            }
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                b"Image" => cur.in_image = false,
                b"M" => cur.window_key = None,
                b"MapAnnotation" => {
                    cur.window_ns = false;
                    cur.annotation_id = None;
                }
                _ => {}
            },
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    // display windows: each annotation's entries onto the images that reference it
    for (id, key, text) in &cur.windows {
        let Some((a, b)) = text.split_once(',') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) else {
            continue;
        };
        for (_, image) in cur.annotation_refs.iter().filter(|(r, _)| r == id) {
            if let Some(img) = doc.images.get_mut(*image)
                && let Some(w) = img.pixels.windows.get_mut(*key)
            {
                *w = Some((a, b));
            }
        }
    }
    Some(doc)
}

fn start(e: &BytesStart<'_>, empty: bool, doc: &mut OmeDocument, cur: &mut Cursor) {
    let local = e.local_name();
    let tag = std::str::from_utf8(local.as_ref()).unwrap_or("");
    let attr = |k: &str| attribute(e, k);
    match tag {
        "Image" => {
            cur.in_image = !empty;
            cur.image_name = attr("Name");
        }
        "Pixels" if cur.in_image => doc.images.push(OmeImage {
            pixels: pixels_of(e, cur.image_name.clone()),
            tiff_data: Vec::new(),
        }),
        "Channel" if cur.in_image => {
            if let Some(img) = doc.images.last_mut() {
                let p = &mut img.pixels;
                let idx = p.channels.len();
                p.channels
                    .push(attr("Name").unwrap_or_else(|| format!("C{idx}")));
                p.colors.push(
                    attr("Color")
                        .and_then(|v| v.trim().parse::<i32>().ok())
                        .map(color_hex),
                );
                p.windows.push(None);
                if idx == 0 {
                    p.samples_per_pixel = attr("SamplesPerPixel")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1);
                }
            }
        }
        "TiffData" if cur.in_image => {
            if let Some(img) = doc.images.last_mut() {
                let n = |k: &str| attr(k).and_then(|v| v.parse::<u64>().ok());
                img.tiff_data.push(TiffDataBlock {
                    ifd: n("IFD").unwrap_or(0),
                    has_ifd: n("IFD").is_some(),
                    first: (
                        n("FirstZ").unwrap_or(0),
                        n("FirstC").unwrap_or(0),
                        n("FirstT").unwrap_or(0),
                    ),
                    plane_count: n("PlaneCount"),
                    file_name: None,
                });
            }
        }
        "UUID" if cur.in_image => {
            if let Some(block) = doc.images.last_mut().and_then(|i| i.tiff_data.last_mut()) {
                block.file_name = attr("FileName").filter(|f| !f.is_empty());
            }
        }
        "AnnotationRef" if cur.in_image => {
            if let Some(id) = attr("ID") {
                cur.annotation_refs
                    .push((id, doc.images.len().saturating_sub(1)));
            }
        }
        "MapAnnotation" => {
            cur.window_ns = attr("Namespace").as_deref() == Some(WINDOW_NAMESPACE);
            cur.annotation_id = attr("ID");
        }
        "M" if cur.window_ns => cur.window_key = attr("K").and_then(|k| k.parse().ok()),
        "BinaryOnly" => doc.metadata_file = attr("MetadataFile"),
        _ => {}
    }
}

/// Parses the first image's pixels from OME-XML; `None` when it is not OME-XML or holds no image.
pub fn parse(xml: &str) -> Option<OmePixels> {
    parse_document(xml)?
        .images
        .into_iter()
        .next()
        .map(|i| i.pixels)
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
            &[
                ChannelSpec {
                    label: "DAPI".into(),
                    color: "0000FF".into(),
                    window: Some((100.0, 2000.0)),
                },
                ChannelSpec {
                    label: "GFP".into(),
                    color: "00FF00".into(),
                    window: None,
                },
            ],
            false,
        );
        let p = parse(&xml).unwrap();
        assert_eq!(p.sizes, sizes);
        assert_eq!(p.name.as_deref(), Some("a & <b>"));
        assert_eq!(p.dtype, Some(PixelType::Uint16));
        assert_eq!(p.physical_um, [Some(0.1625), Some(0.1625), Some(0.5)]);
        assert_eq!(p.channels, ["DAPI", "GFP", "C2"]);
        assert_eq!(
            p.colors,
            [Some("0000FF".to_owned()), Some("00FF00".to_owned()), None]
        );
        assert_eq!(p.windows, [Some((100.0, 2000.0)), None, None]);
        assert_eq!(p.dimension_order, "XYCZT");
        assert!(xml.is_ascii());
        assert!(parse("{\"shape\": [1]}").is_none());
    }

    #[test]
    fn colours_round_trip_through_omes_signed_rgba() {
        assert_eq!(ome_color("FF0000"), Some(-16_776_961));
        assert_eq!(ome_color("00FF00"), Some(16_711_935));
        assert_eq!(ome_color("0000FF"), Some(65_535));
        for hex in ["FF0000", "00FF00", "0000FF", "FFFFFF", "123456"] {
            assert_eq!(color_hex(ome_color(hex).unwrap()), hex);
        }
        assert_eq!(ome_color("red"), None);
    }

    /// A multi-series, multi-file document as Bio-Formats writes it: the second image's
    /// planes live in another file, named by its UUID's `FileName`.
    #[test]
    fn every_series_and_where_its_planes_are_is_read() {
        let xml = r#"<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="urn:uuid:a">
          <Image ID="Image:0" Name="first"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="4" SizeY="3" SizeZ="2" SizeC="1" SizeT="1">
            <Channel ID="Channel:0:0" Name="a" Color="-16776961"/>
            <TiffData IFD="0" PlaneCount="2"><UUID FileName="one.ome.tif">urn:uuid:a</UUID></TiffData>
          </Pixels></Image>
          <Image ID="Image:1" Name="second"><Pixels ID="Pixels:1" DimensionOrder="XYCZT" Type="uint16" SizeX="8" SizeY="8" SizeZ="1" SizeC="2" SizeT="1">
            <Channel ID="Channel:1:0"/><Channel ID="Channel:1:1"/>
            <TiffData FirstC="0" IFD="0" PlaneCount="1"><UUID FileName="two.ome.tif">urn:uuid:b</UUID></TiffData>
            <TiffData FirstC="1" IFD="1" PlaneCount="1"><UUID FileName="two.ome.tif">urn:uuid:b</UUID></TiffData>
          </Pixels></Image></OME>"#;
        let d = parse_document(xml).unwrap();
        assert_eq!(d.images.len(), 2);
        assert_eq!(d.images[0].pixels.name.as_deref(), Some("first"));
        assert_eq!(d.images[0].pixels.colors, [Some("FF0000".to_owned())]);
        assert_eq!(d.images[1].pixels.sizes.c, 2);
        assert_eq!(d.images[1].pixels.dtype, Some(PixelType::Uint16));
        assert_eq!(d.images[1].tiff_data.len(), 2);
        assert_eq!(d.images[1].tiff_data[1].first, (0, 1, 0));
        assert_eq!(d.images[1].tiff_data[1].ifd, 1);
        assert_eq!(
            d.images[1].tiff_data[1].file_name.as_deref(),
            Some("two.ome.tif")
        );
        let binary = r#"<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><BinaryOnly MetadataFile="set.companion.ome" UUID="urn:uuid:c"/></OME>"#;
        let d = parse_document(binary).unwrap();
        assert!(d.images.is_empty());
        assert_eq!(d.metadata_file.as_deref(), Some("set.companion.ome"));
    }
}
