//! Credentials for the Firestore emulator, which authenticates nothing: the
//! stub token the Firebase tools send it. Given explicitly (rather than by
//! `FIRESTORE_EMULATOR_HOST`, which the crate reads from the process
//! environment) so one process, a test above all, can talk to the emulator
//! it chose.

use firestore::gcloud_sdk::google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use firestore::gcloud_sdk::google_cloud_auth::errors::CredentialsError;
use http::header::{AUTHORIZATION, HeaderValue};
use http::{Extensions, HeaderMap};

#[derive(Debug)]
struct StubToken {
    tag: EntityTag,
}

impl CredentialsProvider for StubToken {
    async fn headers(
        &self,
        extensions: Extensions,
    ) -> Result<CacheableResource<HeaderMap>, CredentialsError> {
        if extensions.get::<EntityTag>() == Some(&self.tag) {
            return Ok(CacheableResource::NotModified);
        }
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer owner"));
        Ok(CacheableResource::New {
            entity_tag: self.tag.clone(),
            data: headers,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

pub fn credentials() -> Credentials {
    Credentials::from(StubToken {
        tag: EntityTag::new(),
    })
}
