//! The Track API as a [`Wire`]: the v1 method and path of each action, the v2 batch request,
//! and how its answers become verdicts (which ones allow halving a batch, what a 207 says).

use super::batch::{Packed, Packer};
use super::client::{Request, TrackClient};
use super::error::Answer;
use super::wire::{Rejection, Sending, Verdict, Wire};
use super::{v1_customer_path, Api};
use crate::operation::{Action, Entity, Operation};
use bytes::Bytes;
use reqwest::Method;

/// The v2 batch path.
pub const BATCH_PATH: &str = "/api/v2/batch";

/// The status reported for an operation a batch answer refused individually (a 207's entry;
/// also used for an `errors` list read defensively from a 200).
pub const PARTIAL: u16 = 207;

/// The Track API through v1 (one operation per request) or v2 batch.
#[derive(Debug)]
pub struct TrackApi {
    api: Api,
    client: TrackClient,
}

impl TrackApi {
    /// The Track API through `api`, reached by `client`.
    pub fn new(api: Api, client: TrackClient) -> TrackApi {
        TrackApi { api, client }
    }
}

/// The v1 method and path of `action` on a person; objects and relationships have none and
/// go to `POST /api/v2/entity` ([`super::objects`]).
fn v1_route(entity: Entity, action: Action, id: &crate::record::Identifier) -> (Method, String) {
    match (entity, action) {
        (Entity::Person, Action::Identify) => (Method::PUT, v1_customer_path(id)),
        (Entity::Person, Action::Delete) => (Method::DELETE, v1_customer_path(id)),
        (Entity::Person, Action::Event) => (Method::POST, v1_customer_path(id) + "/events"),
        (Entity::Person, Action::Suppress) => (Method::POST, v1_customer_path(id) + "/suppress"),
        (Entity::Person, Action::Unsuppress) => {
            (Method::POST, v1_customer_path(id) + "/unsuppress")
        }
        (Entity::Person, Action::AddDevice) => (Method::PUT, v1_customer_path(id) + "/devices"),
        // `single` puts the token after it.
        (Entity::Person, Action::DeleteDevice) => {
            (Method::DELETE, v1_customer_path(id) + "/devices")
        }
        (Entity::Person, Action::Merge) => (Method::POST, super::merge::V1_MERGE_PATH.to_string()),
        // No v1 path exists: the operation travels alone in its v2 form.
        (Entity::Object, _)
        | (Entity::Person, Action::AddRelationships | Action::DeleteRelationships) => {
            (Method::POST, super::objects::ENTITY_PATH.to_string())
        }
    }
}

/// What an answer to `req` means for the engine.
fn verdict(req: &Request, answer: Answer) -> Verdict {
    match answer {
        Answer::Accepted { errors, .. } => Verdict::Accepted {
            rejected: errors
                .into_iter()
                .map(|(i, message)| {
                    let status = PARTIAL;
                    (i, Rejection { status, message })
                })
                .collect(),
        },
        Answer::Refused { status, message } => Verdict::Refused {
            // A 400 or 413 to a batch may be about one poison operation (or the body's size).
            halve: req.batch_ops.is_some_and(|n| n > 1) && matches!(status, 400 | 413),
            status,
            message,
        },
        Answer::Fatal { status, message } => Verdict::Fatal { status, message },
        Answer::Retry {
            status: Some(429),
            retry_after,
            message,
        } => Verdict::Throttled {
            status: 429,
            retry_after,
            message,
        },
        Answer::Unreachable { message } => Verdict::Retry {
            unreachable: true,
            status: None,
            retry_after: None,
            message,
        },
        Answer::Retry {
            status,
            retry_after,
            message,
        } => Verdict::Retry {
            unreachable: false,
            status,
            retry_after,
            message,
        },
    }
}

impl Wire for TrackApi {
    fn name(&self) -> &'static str {
        "the Track API"
    }

    fn packer(&self, max_bytes: usize, max_ops: Option<usize>) -> Option<Packer> {
        match self.api {
            Api::Batch => Some(Packer::new(max_bytes, max_ops)),
            Api::V1 => None,
        }
    }

    fn single(&self, op: &mut Operation) -> Request {
        let (method, path) = match (op.action, op.device_token()) {
            (Action::DeleteDevice, Some(token)) => (
                Method::DELETE,
                super::device::v1_device_path(&op.identifier, token),
            ),
            _ => v1_route(op.entity, op.action, &op.identifier),
        };
        Request {
            method,
            path,
            body: Bytes::from(std::mem::take(&mut op.payload)),
            batch_ops: None,
        }
    }

    fn batch(&self, packed: &Packed) -> Request {
        Request {
            method: Method::POST,
            path: BATCH_PATH.to_string(),
            body: packed.body.clone(),
            batch_ops: Some(packed.len()),
        }
    }

    fn send<'a>(&'a self, req: &'a Request) -> Sending<'a> {
        Box::pin(async move { verdict(req, self.client.send(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{IdKind, Identifier};

    fn request(batch_ops: Option<usize>) -> Request {
        Request {
            method: Method::POST,
            path: BATCH_PATH.into(),
            body: Bytes::new(),
            batch_ops,
        }
    }

    #[test]
    fn only_a_refused_batch_of_several_may_be_halved() {
        let refused = |status| Answer::Refused {
            status,
            message: "no".into(),
        };
        let halve = |req: &Request, status| match verdict(req, refused(status)) {
            Verdict::Refused { halve, .. } => halve,
            other => panic!("{other:?}"),
        };
        assert!(halve(&request(Some(2)), 400));
        assert!(halve(&request(Some(2)), 413));
        assert!(!halve(&request(Some(2)), 404));
        assert!(!halve(&request(Some(1)), 400));
        assert!(!halve(&request(None), 400));
    }

    #[test]
    fn answers_become_verdicts() {
        let req = request(Some(3));
        let retry = |status, message: &str| Answer::Retry {
            status,
            retry_after: None,
            message: message.into(),
        };
        assert!(matches!(
            verdict(&req, retry(Some(429), "slow")),
            Verdict::Throttled { status: 429, .. }
        ));
        let unreachable = Answer::Unreachable {
            message: "could not connect: refused".into(),
        };
        assert!(matches!(
            verdict(&req, unreachable),
            Verdict::Retry {
                unreachable: true,
                ..
            }
        ));
        assert!(matches!(
            verdict(&req, retry(Some(503), "could not connect")),
            Verdict::Retry {
                unreachable: false,
                ..
            }
        ));
        let mut errors = std::collections::BTreeMap::new();
        errors.insert(1, "bad".to_string());
        let v = verdict(
            &req,
            Answer::Accepted {
                status: 207,
                errors,
            },
        );
        let Verdict::Accepted { rejected } = v else {
            panic!("{v:?}")
        };
        assert_eq!(
            rejected[&1],
            Rejection {
                status: 207,
                message: "bad".into()
            }
        );
    }

    #[test]
    fn v1_routes_follow_the_action() {
        let id = Identifier {
            kind: IdKind::Email,
            value: "a@b.io".into(),
        };
        let route = |a| v1_route(Entity::Person, a, &id);
        assert_eq!(
            route(Action::Identify),
            (Method::PUT, "/api/v1/customers/a%40b.io".into())
        );
        assert_eq!(route(Action::Delete).0, Method::DELETE);
        assert_eq!(
            route(Action::Suppress),
            (Method::POST, "/api/v1/customers/a%40b.io/suppress".into())
        );
        assert_eq!(
            route(Action::AddDevice),
            (Method::PUT, "/api/v1/customers/a%40b.io/devices".into())
        );
        assert_eq!(
            route(Action::Merge),
            (Method::POST, "/api/v1/merge_customers".into())
        );
        for (entity, action) in [
            (Entity::Object, Action::Identify),
            (Entity::Object, Action::Delete),
            (Entity::Person, Action::AddRelationships),
            (Entity::Person, Action::DeleteRelationships),
        ] {
            assert_eq!(
                v1_route(entity, action, &id),
                (Method::POST, "/api/v2/entity".into())
            );
        }
    }
}
