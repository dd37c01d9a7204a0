//! From a solved layer chain to outputs: layer blobs (made once per layer and remembered),
//! the image config with history times, the manifest, then the requested outputs.

use crate::{BuildOutcome, BuildRequest, Engine, EngineError};
use cache::{LayerBlob, LayerId, Store};
use exporter::{LayerOptions, Output, PushProgress};
use frontend::lower::Lowered;
use registry::{AnyManifest, Descriptor, Digest, ImageConfig, RootFs};
use solver::progress::{Event, ProgressSink};
use std::time::Instant;

use registry::time::format_rfc3339 as rfc3339;

/// Fills `created` of history entries that lack it: a layer's entry gets the time its layer
/// was made, a metadata entry the time of the layer before it, so a fully cached rebuild
/// gives the same times (and the same image digest). With `SOURCE_DATE_EPOCH` every new
/// entry and the image get that time.
fn fill_times(config: &mut ImageConfig, layer_times: &[i64], epoch: Option<i64>) {
    let mut layer = 0usize;
    let mut last: Option<String> = None;
    for h in &mut config.history {
        if !h.empty_layer {
            if let Some(t) = layer_times.get(layer) {
                last = Some(rfc3339(*t));
            }
            layer += 1;
        }
        if h.created.is_none() {
            h.created = Some(match epoch {
                Some(e) => rfc3339(e),
                None => last.clone().unwrap_or_else(|| rfc3339(0)),
            });
        } else if h.empty_layer && last.is_none() {
            last = h.created.clone();
        }
    }
    config.created = match epoch {
        Some(e) => Some(rfc3339(e)),
        None => config.history.last().and_then(|h| h.created.clone()).or_else(|| Some(rfc3339(0))),
    };
}

/// The blob of one layer for `opts`: reused when it was made before, else written now.
///
/// With `SOURCE_DATE_EPOCH` (`opts.source_date_epoch`), layers this build made get their file
/// times clamped (BuildKit's rewrite-timestamp); those blobs are kept apart, per epoch, from
/// the layer's ordinary blob. Base image layers are never rewritten.
pub(crate) fn layer_blob(
    store: &Store,
    id: &LayerId,
    opts: &LayerOptions,
    force: bool,
    rewrite: bool,
) -> Result<(LayerBlob, i64), EngineError> {
    let record = store.meta().layer(id)?.ok_or_else(|| cache::StoreError::LayerNotFound(id.clone()))?;
    if let (true, Some(epoch)) = (rewrite, opts.source_date_epoch) {
        let key = format!("{id}/{:?}/{epoch}", opts.compression);
        if let Some(raw) = store.meta().get_kv(EPOCH_BLOBS, &key)?
            && let Ok(blob) = serde_json::from_slice::<LayerBlob>(&raw)
            && store.content().contains(&blob.descriptor.digest)
        {
            return Ok((blob, record.created_unix));
        }
        let exported = exporter::export_layer(store.content(), &store.layer_dir(id), opts)?;
        let blob =
            LayerBlob { compression: opts.compression, descriptor: exported.blob, diff_id: exported.diff_id };
        let bytes =
            serde_json::to_vec(&blob).map_err(|e| EngineError::Invalid(format!("layer blob record: {e}")))?;
        store.meta().put_kv(EPOCH_BLOBS, &key, &bytes)?;
        return Ok((blob, record.created_unix));
    }
    if let Some(blob) = record.blob(opts.compression) {
        return Ok((blob.clone(), record.created_unix));
    }
    // A pulled layer keeps the compression it came with unless the user forces another.
    if !force && let Some(blob) = record.blobs.first() {
        return Ok((blob.clone(), record.created_unix));
    }
    let plain = LayerOptions { source_date_epoch: None, ..*opts };
    let exported = exporter::export_layer(store.content(), &store.layer_dir(id), &plain)?;
    let blob =
        LayerBlob { compression: opts.compression, descriptor: exported.blob, diff_id: exported.diff_id };
    store.meta().set_layer_blob(id, blob.clone())?;
    Ok((blob, record.created_unix))
}

/// Namespace of the blobs of layers exported with clamped times, by layer, compression, epoch.
const EPOCH_BLOBS: &str = "layer-blob-epoch";

/// Namespace of squashed layer blobs, by the layers merged, compression and epoch.
const SQUASHED_BLOBS: &str = "layer-blob-squashed";

/// One blob holding the changes of `layers` (bottom first), made once per layer list and
/// options, then remembered; its time is that of the newest of them.
fn squashed_blob(
    store: &Store,
    layers: &[LayerId],
    opts: &LayerOptions,
) -> Result<(LayerBlob, i64), EngineError> {
    let mut newest = 0i64;
    let mut dirs = Vec::with_capacity(layers.len());
    for id in layers {
        let record = store.meta().layer(id)?.ok_or_else(|| cache::StoreError::LayerNotFound(id.clone()))?;
        newest = newest.max(record.created_unix);
        dirs.push(store.layer_dir(id));
    }
    let ids: Vec<&str> = layers.iter().map(LayerId::as_str).collect();
    let key =
        format!("{}/{:?}/{:?}/{:?}", ids.join(","), opts.compression, opts.level, opts.source_date_epoch);
    let key = registry::Digest::of_bytes(key.as_bytes()).to_string();
    if let Some(raw) = store.meta().get_kv(SQUASHED_BLOBS, &key)?
        && let Ok(blob) = serde_json::from_slice::<LayerBlob>(&raw)
        && store.content().contains(&blob.descriptor.digest)
    {
        return Ok((blob, newest));
    }
    let scratch = store.scratch_dir()?;
    let exported = exporter::export_squashed_layer(store.content(), &dirs, scratch.path(), opts)?;
    let blob =
        LayerBlob { compression: opts.compression, descriptor: exported.blob, diff_id: exported.diff_id };
    let bytes =
        serde_json::to_vec(&blob).map_err(|e| EngineError::Invalid(format!("layer blob record: {e}")))?;
    store.meta().put_kv(SQUASHED_BLOBS, &key, &bytes)?;
    Ok((blob, newest))
}

/// History of a squashed image: the build's steps stay listed, but only the last one that
/// made a layer still owns one (the squashed layer), so entries and layers keep matching.
fn squash_history(history: &mut [registry::History], base_layers: usize) {
    let layered: Vec<usize> =
        history.iter().enumerate().filter(|(_, h)| !h.empty_layer).map(|(i, _)| i).collect();
    if let Some((_, added)) =
        layered.split_last().map(|(last, rest)| (last, &rest[base_layers.min(rest.len())..]))
    {
        for &i in added {
            history[i].empty_layer = true;
        }
    }
}

/// How many layers at the bottom of the target come from its base image (never rewritten).
fn base_layer_count(store: &Store, lowered: &Lowered) -> usize {
    lowered
        .base_image
        .as_ref()
        .and_then(|r| r.digest.as_ref())
        .and_then(|d| store.content().read(d).ok())
        .and_then(|bytes| match AnyManifest::parse(None, &bytes) {
            Ok(AnyManifest::Image(m)) => Some(m.layers.len()),
            _ => None,
        })
        .unwrap_or(0)
}

/// Sum of the sizes of an image's blobs (manifest, config, layers).
pub(crate) fn image_size(store: &Store, manifest: &Descriptor) -> Result<u64, EngineError> {
    let bytes = store.content().read(&manifest.digest).map_err(cache::StoreError::from)?;
    match AnyManifest::parse(Some(&manifest.media_type), &bytes) {
        Ok(AnyManifest::Image(m)) => {
            Ok(manifest.size + m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>())
        }
        _ => Ok(manifest.size),
    }
}

/// The image ID (config digest) of a single-platform manifest.
pub(crate) fn image_id(store: &Store, manifest: &Descriptor) -> Result<Digest, EngineError> {
    let bytes = store.content().read(&manifest.digest).map_err(cache::StoreError::from)?;
    match AnyManifest::parse(Some(&manifest.media_type), &bytes) {
        Ok(AnyManifest::Image(m)) => Ok(m.config.digest),
        _ => Ok(manifest.digest.clone()),
    }
}

/// One platform's result: what was lowered and the layer chain the solve produced.
pub(crate) type PlatformResult<'a> = (&'a Lowered, &'a [LayerId]);

/// The local-output directory of one platform when several are built (BuildKit's layout).
fn platform_dir(p: &registry::Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}_{}_{v}", p.os, p.architecture),
        None => format!("{}_{}", p.os, p.architecture),
    }
}

impl Engine {
    /// Writes the build's image(s) and every requested output. Several platforms give one
    /// image per platform under an image index.
    pub(crate) async fn export(
        &self,
        req: &BuildRequest,
        images: &[PlatformResult<'_>],
        inline: Option<&[crate::cache_io::Chosen]>,
        progress: &ProgressSink,
    ) -> Result<BuildOutcome, EngineError> {
        let step = "export".to_string();
        progress.started(&step, "exporting to image");
        let start = Instant::now();
        let result = self.export_inner(req, images, inline, progress, &step).await;
        match &result {
            Ok(_) => progress.done(&step, start, Default::default()),
            Err(e) => progress.failed(&step, e.to_string()),
        }
        result
    }

    /// Layer blobs, config and manifest of one platform's image; with `inline`, the config
    /// carries the records of its steps (`--cache-to type=inline`).
    async fn write_platform_image(
        &self,
        req: &BuildRequest,
        lowered: &Lowered,
        chain: &[LayerId],
        inline: Option<&[crate::cache_io::Chosen]>,
        progress: &ProgressSink,
        step: &str,
    ) -> Result<(exporter::WrittenImage, ImageConfig), EngineError> {
        let epoch = lowered.source_date_epoch;
        let image_output = req.outputs.iter().find(|o| o.needs_image());
        let opts = image_output.map_or_else(
            || LayerOptions { source_date_epoch: epoch, ..Default::default() },
            |o| o.layer_options(epoch),
        );
        let force = matches!(image_output, Some(Output::Image { force_compression: true, .. }));
        let squash = matches!(image_output, Some(Output::Image { squash: true, .. }));
        let oci = opts.oci_media_types;

        // Layers (made once per layer, then remembered in the store).
        let store = self.store.clone();
        let ids = chain.to_vec();
        let log = progress.clone();
        let step_id = step.to_string();
        let base_layers = base_layer_count(&self.store, lowered);
        // Squashing only changes something when the build added more than one layer.
        let squashed = squash && ids.len() > base_layers + 1;
        if squashed && inline.is_some() {
            return Err(EngineError::Invalid(
                "--cache-to type=inline cannot describe a squashed image (its layer is none of the steps' \
                 layers): use --cache-to type=registry or type=local"
                    .into(),
            ));
        }
        let blobs = tokio::task::spawn_blocking(move || -> Result<Vec<(LayerBlob, i64)>, EngineError> {
            let mut out = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                if squashed && i >= base_layers {
                    out.push(squashed_blob(&store, &ids[base_layers..], &opts)?);
                } else {
                    out.push(layer_blob(&store, id, &opts, force, i >= base_layers)?);
                }
                let last = &out.last().expect("just pushed").0.descriptor;
                log.send(Event::Transfer {
                    step: step_id.clone(),
                    item: format!("layer {}", &last.digest.hex()[..12]),
                    current: last.size,
                    total: Some(last.size),
                });
                if squashed && i >= base_layers {
                    break;
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| EngineError::Invalid(format!("layer export task failed: {e}")))??;

        let mut config = lowered.image.clone();
        if squashed {
            squash_history(&mut config.history, base_layers);
        }
        config.rootfs = RootFs {
            kind: "layers".into(),
            diff_ids: blobs.iter().map(|(b, _)| b.diff_id.clone()).collect(),
        };
        let times: Vec<i64> = blobs.iter().map(|(_, t)| *t).collect();
        fill_times(&mut config, &times, epoch);
        // A base image's inline cache describes the base, not this image.
        config.inline_cache =
            inline.map(|candidates| crate::cache_io::inline_cache(candidates, chain, &blobs));
        let layers: Vec<Descriptor> = blobs.into_iter().map(|(b, _)| b.descriptor).collect();
        // A squashed layer is no layer directory of the store; the base's still are.
        let remembered = if squashed { base_layers } else { chain.len() };
        solver::remember_chain(&self.store, &config.rootfs.diff_ids[..remembered], &chain[..remembered])?;
        let written = exporter::write_image(self.store.content(), &config, &layers, oci)?;
        Ok((written, config))
    }

    async fn export_inner(
        &self,
        req: &BuildRequest,
        images: &[PlatformResult<'_>],
        inline: Option<&[crate::cache_io::Chosen]>,
        progress: &ProgressSink,
        step: &str,
    ) -> Result<BuildOutcome, EngineError> {
        let multi = images.len() > 1;
        let mut written = Vec::with_capacity(images.len());
        for (lowered, chain) in images {
            written.push(self.write_platform_image(req, lowered, chain, inline, progress, step).await?);
        }
        let platforms: Vec<registry::Platform> = written.iter().map(|(_, c)| c.platform()).collect();
        let (manifest, image_id) = if multi {
            let oci = req.outputs.iter().find_map(|o| match o {
                Output::Image { oci_media_types, .. } => Some(*oci_media_types),
                _ => None,
            });
            let mut manifests: Vec<Descriptor> = written.iter().map(|(w, _)| w.manifest.clone()).collect();
            for (m, p) in manifests.iter_mut().zip(&platforms) {
                m.platform = Some(p.clone());
            }
            let index = exporter::write_index(self.store.content(), &manifests, oci.unwrap_or(true))?;
            let id = index.digest.clone();
            (index, id)
        } else {
            let (w, _) = &written[0];
            (w.manifest.clone(), w.config.digest.clone())
        };

        let mut names = Vec::new();
        let mut pushed = Vec::new();
        for output in &req.outputs {
            match output {
                Output::Image { names: refs, push, .. } => {
                    for r in refs {
                        let record = cache::ImageRecord {
                            manifest: manifest.clone(),
                            created_unix: now_unix(),
                            platforms: platforms.clone(),
                        };
                        self.store.meta().put_image(&r.to_string(), &record)?;
                        names.push(r.to_string());
                        if *push {
                            let log = progress.clone();
                            let sid = step.to_string();
                            let report = move |p: PushProgress| {
                                if let PushProgress::Blob { digest, sent, total } = p {
                                    log.send(Event::Transfer {
                                        step: sid.clone(),
                                        item: format!("pushing {}", &digest.hex()[..12]),
                                        current: sent,
                                        total: Some(total),
                                    });
                                }
                            };
                            // Base layers already in another repository of the same registry
                            // are mounted there instead of uploaded again.
                            let mount_from = images[0]
                                .0
                                .base_image
                                .as_ref()
                                .filter(|b| b.registry == r.registry && b.repository != r.repository);
                            let digest = exporter::push_image(
                                &self.client,
                                self.store.content(),
                                &manifest,
                                r,
                                mount_from,
                                &report,
                            )
                            .await?;
                            pushed.push((r.to_string(), digest));
                        }
                    }
                }
                Output::Oci { dest, names: refs } => {
                    let (content, m, refs, dest) =
                        (self.store.clone(), manifest.clone(), refs.clone(), dest.clone());
                    blocking(move || exporter::write_oci_archive(content.content(), &m, &refs, &dest))
                        .await?;
                }
                Output::Docker { .. } if multi => {
                    return Err(EngineError::Invalid(
                        "docker exporter does not support multi-platform images: use -o type=oci or --push"
                            .into(),
                    ));
                }
                Output::Docker { dest, names: refs } => {
                    let (content, m, refs, dest) =
                        (self.store.clone(), manifest.clone(), refs.clone(), dest.clone());
                    blocking(move || exporter::write_docker_archive(content.content(), &m, &refs, &dest))
                        .await?;
                }
                Output::Local { dest } => {
                    for ((_, chain), platform) in images.iter().zip(&platforms) {
                        let dest = if multi { dest.join(platform_dir(platform)) } else { dest.clone() };
                        let (store, chain) = (self.store.clone(), chain.to_vec());
                        blocking_store(move || {
                            let view = store.mount_readonly(&chain)?;
                            exporter::write_local(view.path(), &dest).map_err(EngineError::from)
                        })
                        .await?;
                    }
                }
                Output::Tar { dest } if multi => {
                    let (store, dest) = (self.store.clone(), dest.clone());
                    let chains: Vec<(String, Vec<LayerId>)> = images
                        .iter()
                        .zip(&platforms)
                        .map(|((_, chain), platform)| (platform_dir(platform), chain.to_vec()))
                        .collect();
                    blocking_store(move || {
                        // Mounted together, so every view lives until the archive is written.
                        let views = chains
                            .iter()
                            .map(|(dir, chain)| Ok((dir.clone(), store.mount_readonly(chain)?)))
                            .collect::<Result<Vec<_>, cache::StoreError>>()?;
                        let trees: Vec<(String, std::path::PathBuf)> = views
                            .iter()
                            .map(|(dir, view)| (dir.clone(), view.path().to_path_buf()))
                            .collect();
                        exporter::write_rootfs_tars(&trees, &dest).map_err(EngineError::from)
                    })
                    .await?;
                }
                Output::Tar { dest } => {
                    let (store, chain, dest) = (self.store.clone(), images[0].1.to_vec(), dest.clone());
                    blocking_store(move || {
                        let view = store.mount_readonly(&chain)?;
                        exporter::write_rootfs_tar(view.path(), &dest).map_err(EngineError::from)
                    })
                    .await?;
                }
            }
        }
        Ok(BuildOutcome {
            build_id: String::new(),
            image_id,
            manifest,
            names,
            pushed,
            warnings: Vec::new(),
            steps_ran: 0,
            steps_cached: 0,
        })
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

async fn blocking(
    f: impl FnOnce() -> Result<(), exporter::ExportError> + Send + 'static,
) -> Result<(), EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Invalid(format!("export task failed: {e}")))?
        .map_err(EngineError::from)
}

async fn blocking_store(
    f: impl FnOnce() -> Result<(), EngineError> + Send + 'static,
) -> Result<(), EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Invalid(format!("export task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::History;

    #[test]
    fn history_times_follow_layers() {
        let entry = |empty: bool| History { empty_layer: empty, ..Default::default() };
        let mut config =
            ImageConfig { history: vec![entry(false), entry(true), entry(false)], ..Default::default() };
        fill_times(&mut config, &[100, 200], None);
        let times: Vec<_> = config.history.iter().map(|h| h.created.clone().unwrap()).collect();
        assert_eq!(times, vec![rfc3339(100), rfc3339(100), rfc3339(200)]);
        assert_eq!(config.created, Some(rfc3339(200)));
        fill_times(&mut config, &[100, 200], Some(5));
        assert_eq!(config.created, Some(rfc3339(5)));
    }
}
