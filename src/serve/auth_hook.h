// Sign-in for the server (issue 14): the API-key lookup over the store's
// catalog, and the Service's auth hook from an auth::Authenticator.
#pragma once

#include <memory>

#include "auth/authenticator.h"
#include "serve/service.h"
#include "store/store.h"

namespace hart::serve {

// Finds a live API key by its hash: the Caller it stands for (actor
// "apikey:NAME"), Unauthenticated for an unknown or revoked one.
auth::ApiKeyLookup ApiKeyLookupFor(std::shared_ptr<store::Store> store);

// Turns sign-in on: every request's Authorization header goes through `a`
// (ServiceOptions::auth holds what the sign-in metadata routes publish).
void EnableAuth(Service& svc, std::shared_ptr<auth::Authenticator> a);

}  // namespace hart::serve
