#include "serve/service.h"
namespace hart::serve {
void AddRestRoutes(Service& svc) {}
}  // namespace hart::serve
