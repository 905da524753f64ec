#include "serve/service.h"
namespace hart::serve {
void AddOpenAiRoutes(Service& svc) {}
}  // namespace hart::serve
