// Sign-in commands (issue 14): `hart keys create|list|revoke` and
// `hart visibility MODEL private|tenant|public`; and the API-key lookup
// `hart serve --auth` hands the Authenticator.
#pragma once

#include <memory>

#include "auth/authenticator.h"
#include "store/store.h"

namespace hart::cli {

auth::ApiKeyLookup ApiKeyLookupFor(std::shared_ptr<store::Store> store);

}  // namespace hart::cli
