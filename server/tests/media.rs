//! Images over HTTP: uploads validated by content, the blob store, serving with cache headers,
//! and images on tweets.

mod common;

use std::io::Cursor;
use std::path::Path;

use common::{data_dir, Chirp, Reply};
use image::{DynamicImage, ImageFormat, RgbaImage};
use serde_json::json;

const TYPES: [(&str, ImageFormat); 4] = [
    ("image/png", ImageFormat::Png),
    ("image/jpeg", ImageFormat::Jpeg),
    ("image/gif", ImageFormat::Gif),
    ("image/webp", ImageFormat::WebP),
];

/// A small gradient, different per `seed`, encoded as `format`.
fn picture(format: ImageFormat, width: u32, height: u32, seed: u8) -> Vec<u8> {
    let rgba = RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x * 4) as u8 ^ seed, (y * 4) as u8, seed, 255])
    });
    let img = match format {
        // JPEG has no alpha channel.
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).to_rgb8()),
        _ => DynamicImage::ImageRgba8(rgba),
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

fn upload(chirp: &Chirp, token: Option<&str>, ctype: &str, body: &[u8]) -> Reply {
    chirp.send(
        "POST",
        "/media",
        token,
        &[("Content-Type", ctype)],
        Some(body),
    )
}

/// Uploads and expects 201; returns the media id.
fn uploaded(chirp: &Chirp, token: &str, ctype: &str, body: &[u8]) -> String {
    let r = upload(chirp, Some(token), ctype, body);
    assert_eq!(r.status, 201, "{}", r.json());
    r.json()["id"].as_str().expect("id").to_string()
}

fn assert_problem(r: &Reply, status: u16, field: Option<&str>) {
    let body = r.json();
    assert_eq!(r.status, status, "{body}");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    if let Some(field) = field {
        assert_eq!(body["field"], field, "{body}");
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut tagged = kind.to_vec();
    tagged.extend_from_slice(data);
    out.extend_from_slice(&tagged);
    out.extend_from_slice(&crc32(&tagged).to_be_bytes());
}

/// A valid PNG header declaring `w`×`h` RGB pixels, with a tiny compressed body: a
/// decompression bomb if anyone allocates what it declares.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    // zlib stream of a few zero bytes; inflating "all rows" would need w*h*3 bytes.
    png_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A JPEG carrying an EXIF (APP1) segment with a GPS-looking payload.
fn jpeg_with_exif() -> Vec<u8> {
    let jpeg = picture(ImageFormat::Jpeg, 32, 32, 9);
    assert_eq!(&jpeg[..2], [0xFF, 0xD8]);
    // "Exif\0\0", then a big-endian TIFF header with one empty IFD, then a marker string.
    let mut payload = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\0\0\0\0\0".to_vec();
    payload.extend_from_slice(b"GPSLatitude 59.9139N GPSLongitude 10.7522E");
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Blob files under the data dir's media store (temp files excluded).
fn blob_files(dir: &Path) -> usize {
    fn walk(p: &Path, n: &mut usize) {
        for e in std::fs::read_dir(p).expect("read_dir").flatten() {
            let path = e.path();
            if path.is_dir() {
                if e.file_name() != "tmp" {
                    walk(&path, n);
                }
            } else {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&dir.join("media"), &mut n);
    n
}

#[test]
fn every_format_uploads_and_round_trips() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let (_, token) = chirp.user("alice");
    for (i, (ctype, format)) in TYPES.into_iter().enumerate() {
        let r = upload(
            &chirp,
            Some(&token),
            ctype,
            &picture(format, 48, 20, i as u8),
        );
        let m = r.json();
        assert_eq!(r.status, 201, "{ctype}: {m}");
        let id = m["id"].as_str().expect("id");
        assert!(id.parse::<u64>().is_ok(), "{m}");
        assert_eq!(m["url"], format!("/media/{id}"));
        assert_eq!(m["content_type"], ctype);
        assert_eq!(
            (m["width"].as_u64(), m["height"].as_u64()),
            (Some(48), Some(20))
        );
        assert_eq!(r.header("location"), m["url"].as_str());

        let got = chirp.send("GET", &format!("/media/{id}"), None, &[], None);
        assert_eq!(got.status, 200);
        assert_eq!(got.header("content-type"), Some(ctype));
        assert_eq!(Some(got.body.len() as u64), m["bytes"].as_u64());
        let decoded = image::load_from_memory_with_format(&got.body, format)
            .unwrap_or_else(|e| panic!("{ctype} served bytes do not decode: {e}"));
        assert_eq!((decoded.width(), decoded.height()), (48, 20), "{ctype}");
    }
}

#[test]
fn uploads_are_validated_by_content() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let (_, token) = chirp.user("alice");
    let png = picture(ImageFormat::Png, 16, 16, 1);

    // The body is a PNG; the header says JPEG.
    let r = upload(&chirp, Some(&token), "image/jpeg", &png);
    assert_problem(&r, 422, Some("content_type"));
    assert!(r.json()["detail"]
        .as_str()
        .is_some_and(|d| d.contains("PNG")));
    // Cut short.
    assert_problem(
        &upload(&chirp, Some(&token), "image/png", &png[..png.len() - 20]),
        422,
        Some("file"),
    );
    let jpeg = picture(ImageFormat::Jpeg, 64, 64, 1);
    assert_problem(
        &upload(&chirp, Some(&token), "image/jpeg", &jpeg[..jpeg.len() / 2]),
        422,
        Some("file"),
    );
    // Not an image at all, under an image type and under other types.
    assert_problem(
        &upload(&chirp, Some(&token), "image/gif", b"just some text, honest"),
        422,
        Some("file"),
    );
    assert_problem(
        &upload(&chirp, Some(&token), "image/png", b""),
        422,
        Some("file"),
    );
    assert_problem(&upload(&chirp, Some(&token), "text/plain", &png), 415, None);
    assert_problem(&upload(&chirp, Some(&token), "image/bmp", &png), 415, None);
    let no_type = chirp.send("POST", "/media", Some(&token), &[], Some(&png));
    assert_problem(&no_type, 415, None);
    // Huge declared dimensions are refused before anything is allocated.
    let r = upload(
        &chirp,
        Some(&token),
        "image/png",
        &png_bomb(100_000, 100_000),
    );
    assert_problem(&r, 422, Some("file"));
    assert!(
        r.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("8192")),
        "{}",
        r.json()
    );
    // Without a token.
    assert_problem(&upload(&chirp, None, "image/png", &png), 401, None);
    assert_problem(
        &upload(&chirp, Some("nonsense"), "image/png", &png),
        401,
        None,
    );
    // The server is still well after all of that.
    uploaded(&chirp, &token, "image/png", &png);
}

#[test]
fn oversized_uploads_are_413() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &["--max-media-bytes", "20000"]);
    let (_, token) = chirp.user("alice");
    // Noise does not compress: this PNG is well over the limit.
    let big = {
        let img = RgbaImage::from_fn(120, 120, |x, y| {
            let v = (x * 7919 + y * 104_729) as u8 ^ (x * y) as u8;
            image::Rgba([v, v.wrapping_mul(31), v.wrapping_add(97), 255])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(img)
            .write_to(&mut out, ImageFormat::Png)
            .expect("encode");
        out.into_inner()
    };
    assert!(big.len() > 20_000 && big.len() < 200_000, "{}", big.len());
    let r = upload(&chirp, Some(&token), "image/png", &big);
    assert_problem(&r, 413, None);
    // The unread rest of the body spoils the connection; the client is told not to reuse it.
    assert_eq!(r.header("connection"), Some("close"));
    let small = picture(ImageFormat::Png, 16, 16, 3);
    uploaded(&chirp, &token, "image/png", &small);
}

#[test]
fn served_images_are_cacheable_and_conditional() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let (_, token) = chirp.user("alice");
    let id = uploaded(
        &chirp,
        &token,
        "image/png",
        &picture(ImageFormat::Png, 8, 8, 5),
    );
    let path = format!("/media/{id}");
    let first = chirp.send("GET", &path, None, &[], None);
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let etag = first.header("etag").expect("etag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 66,
        "{etag}"
    );

    let again = chirp.send("GET", &path, None, &[("If-None-Match", &etag)], None);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let weak = format!("\"nope\", W/{etag}");
    assert_eq!(
        chirp
            .send("GET", &path, None, &[("If-None-Match", &weak)], None)
            .status,
        304
    );
    let other = chirp.send("GET", &path, None, &[("If-None-Match", "\"nope\"")], None);
    assert_eq!(other.status, 200);
    assert_eq!(other.body, first.body);

    assert_problem(
        &chirp.send("GET", "/media/12345", None, &[], None),
        404,
        None,
    );
    assert_problem(
        &chirp.send("GET", "/media/cat.png", None, &[], None),
        404,
        None,
    );
    assert_problem(
        &chirp.send("DELETE", &path, Some(&token), &[], None),
        405,
        None,
    );
}

#[test]
fn the_same_image_is_stored_once_and_metadata_is_stripped() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let (_, alice) = chirp.user("alice");
    let (_, bob) = chirp.user("bob");
    let png = picture(ImageFormat::Png, 30, 30, 7);
    let a = uploaded(&chirp, &alice, "image/png", &png);
    let b = uploaded(&chirp, &alice, "image/png", &png);
    let c = uploaded(&chirp, &bob, "image/png", &png);
    assert!(a != b && b != c, "each upload has its own id");
    assert_eq!(blob_files(&dir), 1);
    let etag = |id: &str| {
        chirp
            .send("GET", &format!("/media/{id}"), None, &[], None)
            .header("etag")
            .map(str::to_owned)
    };
    assert_eq!(etag(&a), etag(&c));

    let exif = jpeg_with_exif();
    assert!(contains(&exif, b"Exif") && contains(&exif, b"GPSLatitude"));
    let id = uploaded(&chirp, &alice, "image/jpeg", &exif);
    let served = chirp.send("GET", &format!("/media/{id}"), None, &[], None);
    assert_eq!(served.status, 200);
    assert!(!contains(&served.body, b"Exif"), "EXIF segment served");
    assert!(!contains(&served.body, b"GPSLatitude"), "GPS data served");
    let decoded = image::load_from_memory_with_format(&served.body, ImageFormat::Jpeg)
        .expect("served JPEG decodes");
    assert_eq!((decoded.width(), decoded.height()), (32, 32));
    assert_eq!(blob_files(&dir), 2);
}

#[test]
fn multipart_uploads_take_the_file_field() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let (_, token) = chirp.user("alice");
    let gif = picture(ImageFormat::Gif, 12, 10, 2);
    let form = |part_type: &str, name: &str| {
        let mut body = Vec::new();
        body.extend_from_slice(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nmy cat\r\n",
        );
        body.extend_from_slice(
            format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"cat.gif\"\r\n\
                 Content-Type: {part_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&gif);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        body
    };
    let ctype = "multipart/form-data; boundary=XyZ";
    for part_type in ["image/gif", "application/octet-stream"] {
        let r = upload(&chirp, Some(&token), ctype, &form(part_type, "file"));
        assert_eq!(r.status, 201, "{part_type}: {}", r.json());
        assert_eq!(r.json()["content_type"], "image/gif");
        assert_eq!(r.json()["width"], 12);
    }
    // The part's type is checked against its content like a raw upload's.
    assert_problem(
        &upload(&chirp, Some(&token), ctype, &form("image/png", "file")),
        422,
        Some("content_type"),
    );
    assert_problem(
        &upload(&chirp, Some(&token), ctype, &form("image/gif", "photo")),
        422,
        Some("file"),
    );
    assert_problem(
        &upload(
            &chirp,
            Some(&token),
            "multipart/form-data",
            &form("image/gif", "file"),
        ),
        400,
        None,
    );
}

#[test]
fn tweets_carry_their_authors_images() {
    let (_tmp, dir) = data_dir();
    let chirp = Chirp::start(&dir, &[]);
    let (alice_id, alice) = chirp.user("alice");
    let (bob_id, bob) = chirp.user("bob");
    assert_eq!(
        chirp
            .call(
                "POST",
                &format!("/{bob_id}/follow/{alice_id}"),
                Some(&bob),
                None
            )
            .0,
        200
    );
    let ids: Vec<String> = (0..5)
        .map(|i| {
            let (ctype, format) = TYPES[i % 4];
            uploaded(
                &chirp,
                &alice,
                ctype,
                &picture(format, 10 + i as u32, 9, i as u8),
            )
        })
        .collect();
    let bobs = uploaded(
        &chirp,
        &bob,
        "image/png",
        &picture(ImageFormat::Png, 5, 5, 1),
    );

    let post = |token: &str, media: &[&String]| {
        chirp.call(
            "POST",
            "/tweet",
            Some(token),
            Some(json!({"text": "look #pics", "media": media})),
        )
    };
    let (s, t) = post(&alice, &[&ids[0], &ids[1], &ids[2], &ids[3]]);
    assert_eq!(s, 201, "{t}");
    let media = t["media"].as_array().expect("media");
    assert_eq!(media.len(), 4);
    for (i, m) in media.iter().enumerate() {
        assert_eq!(m["id"], ids[i].as_str());
        assert_eq!(m["url"], format!("/media/{}", ids[i]));
        assert_eq!(m["content_type"], TYPES[i].0);
        assert_eq!(m["width"], 10 + i as u64);
        assert_eq!(m["height"], 9);
    }
    let tweet_id = t["id"].as_str().expect("id").to_string();
    assert_eq!(
        chirp
            .call("GET", &format!("/tweets/{tweet_id}"), None, None)
            .1,
        t
    );
    chirp.eventually("the tweet with images in bob's feed", || {
        let (_, feed) = chirp.call("GET", "/feed", Some(&bob), None);
        feed["tweets"][0]["media"] == t["media"]
    });

    let refuse = |token: &str, media: &[&String]| {
        let (s, body) = post(token, media);
        assert_eq!(s, 422, "{body}");
        assert_eq!(body["field"], "media", "{body}");
    };
    refuse(&alice, &ids.iter().collect::<Vec<_>>());
    refuse(&alice, &[&ids[0], &bobs]);
    refuse(&bob, &[&ids[4]]);
    refuse(&alice, &[&ids[0], &ids[0]]);
    refuse(&alice, &[&"123456789".to_string()]);
    // An image may be shown by more than one tweet.
    assert_eq!(post(&alice, &[&ids[0]]).0, 201);
    assert_eq!(post(&bob, &[&bobs]).0, 201);
}

#[test]
fn media_survives_sigkill() {
    let (_tmp, dir) = data_dir();
    let mut chirp = Chirp::start(&dir, &[]);
    let (_, token) = chirp.user("alice");
    let png = picture(ImageFormat::Png, 21, 13, 4);
    let id = uploaded(&chirp, &token, "image/png", &png);
    let before = chirp.send("GET", &format!("/media/{id}"), None, &[], None);
    let (s, t) = chirp.call(
        "POST",
        "/tweet",
        Some(&token),
        Some(json!({"text": "durable picture", "media": [id]})),
    );
    assert_eq!(s, 201, "{t}");
    chirp.kill();

    let chirp = Chirp::start(&dir, &[]);
    let after = chirp.send("GET", &format!("/media/{id}"), None, &[], None);
    assert_eq!(after.status, 200);
    assert_eq!(after.body, before.body);
    assert_eq!(after.header("etag"), before.header("etag"));
    let tweet = chirp.call(
        "GET",
        &format!("/tweets/{}", t["id"].as_str().expect("id")),
        None,
        None,
    );
    assert_eq!(tweet.1["media"], t["media"]);
    // New uploads after the restart get fresh ids.
    let next = uploaded(
        &chirp,
        &token,
        "image/png",
        &picture(ImageFormat::Png, 3, 3, 8),
    );
    assert!(next.parse::<u64>().expect("id") > id.parse::<u64>().expect("id"));
}
