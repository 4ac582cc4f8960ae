//! The `s3://bucket/prefix` backend of [`super::RecordingStore`], through
//! `object_store`: objects at `prefix/YYYY/MM/DD/<id>-<file>`, uploaded
//! whole (one PUT, atomic) or, above [`MULTIPART_ABOVE`], as a multipart
//! upload (also atomic: the object appears only when the upload completes;
//! a failed one is aborted).

use std::path::Path;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{ByteStream, StorageError};
use crate::config::RecordingsConfig;

/// Files larger than this go up as a multipart upload, in parts of this size
/// (S3 wants parts of at least 5 MiB but the last).
pub const MULTIPART_ABOVE: u64 = 8 << 20;
/// Parts in flight at once during a multipart upload.
const PARTS_IN_FLIGHT: usize = 2;

/// A bucket and key prefix in an S3-compatible store.
#[derive(Clone)]
pub struct S3Archive {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
}

impl std::fmt::Debug for S3Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Archive")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl S3Archive {
    /// The object store of `[recordings] store = "s3://…"`; None for `file:`.
    pub fn from_config(cfg: &RecordingsConfig) -> Result<Option<S3Archive>, StorageError> {
        let Some((bucket, prefix)) = cfg.s3_location() else {
            return Ok(None);
        };
        let s3 = &cfg.s3;
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(&s3.region)
            .with_virtual_hosted_style_request(!s3.path_style)
            .with_allow_http(s3.allow_http);
        if let Some(e) = &s3.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &s3.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &s3.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        let store = b.build().map_err(|source| StorageError::Setup {
            store: cfg.store.clone(),
            source,
        })?;
        Ok(Some(S3Archive {
            store: Arc::new(store),
            bucket,
            prefix,
        }))
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// `s3://bucket/prefix/key`, for messages and the verified cache.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.path(key))
    }

    fn err(&self, key: &str) -> impl FnOnce(object_store::Error) -> StorageError + '_ {
        let key = self.url_of(key);
        move |source| StorageError::Object { key, source }
    }

    /// Uploads the local file `path` as `key`.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        let io = |source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        };
        let len = tokio::fs::metadata(path).await.map_err(io)?.len();
        let loc = self.path(key);
        if len <= MULTIPART_ABOVE {
            let data = tokio::fs::read(path).await.map_err(io)?;
            self.store
                .put(&loc, PutPayload::from(data))
                .await
                .map_err(self.err(key))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&loc)
            .await
            .map_err(self.err(key))?;
        let chunk = usize::try_from(MULTIPART_ABOVE).unwrap_or(usize::MAX);
        let mut w = WriteMultipart::new_with_chunk_size(upload, chunk);
        let res: Result<(), StorageError> = async {
            let mut file = tokio::fs::File::open(path).await.map_err(io)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    return Ok(());
                }
                w.wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(self.err(key))?;
                w.write(&buf[..n]);
            }
        }
        .await;
        match res {
            Ok(()) => w.finish().await.map(drop).map_err(self.err(key)),
            Err(e) => {
                let _ = w.abort().await;
                Err(e)
            }
        }
    }

    pub async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        self.store
            .head(&self.path(key))
            .await
            .map_err(self.err(key))
    }

    /// `count` bytes from `start` by a ranged GET (nothing else is read).
    pub async fn get_range(
        &self,
        key: &str,
        start: u64,
        count: u64,
    ) -> Result<ByteStream, StorageError> {
        if count == 0 {
            return Ok(futures_util::stream::empty().boxed());
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..start + count)),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&self.path(key), opts)
            .await
            .map_err(self.err(key))?;
        Ok(got.into_stream().map_err(std::io::Error::other).boxed())
    }

    /// Streams the whole object through sha256: (bytes, sha256 hex).
    pub async fn hash(&self, key: &str) -> Result<(u64, String), StorageError> {
        let got = self
            .store
            .get(&self.path(key))
            .await
            .map_err(self.err(key))?;
        let mut stream = got.into_stream();
        let (mut h, mut n) = (Sha256::new(), 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(self.err(key))?;
            n += chunk.len() as u64;
            h.update(&chunk);
        }
        Ok((n, hex::encode(h.finalize())))
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&self.path(key)).await {
            Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(self.err(key)(e)),
        }
    }
}
