#include "serve/router.h"

#include <algorithm>

namespace hart::serve {

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

void Router::Add(Route r) { routes_.push_back(std::move(r)); }

namespace {
bool MatchPath(const std::vector<std::string>& tmpl, const std::vector<std::string>& segs,
               std::map<std::string, std::string>* params) {
  if (tmpl.size() != segs.size()) return false;
  std::map<std::string, std::string> p;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    const std::string& t = tmpl[i];
    if (t.size() > 2 && t.front() == '{' && t.back() == '}') {
      if (segs[i].empty()) return false;
      p[t.substr(1, t.size() - 2)] = segs[i];
    } else if (t != segs[i]) {
      return false;
    }
  }
  *params = std::move(p);
  return true;
}
}  // namespace

RouteMatch Router::Match(const std::string& method, const std::string& path) const {
  RouteMatch m;
  std::vector<std::string> segs = SplitPath(path);
  // A trailing slash is not a different resource, but "//" games are not
  // routes either: SplitPath drops empty segments, so compare the rebuilt path.
  std::string canon;
  for (auto& s : segs) canon += "/" + s;
  if (canon.empty()) canon = "/";
  if (canon != path && canon + "/" != path) return m;
  // Literal segments win over params: try routes with fewer params first.
  const Route* best = nullptr;
  int best_params = 1 << 20;
  for (const Route& r : routes_) {
    std::map<std::string, std::string> p;
    if (!MatchPath(SplitPath(r.path), segs, &p)) continue;
    m.path_known = true;
    if (std::find(m.allowed.begin(), m.allowed.end(), r.method) == m.allowed.end()) m.allowed.push_back(r.method);
    bool method_ok = r.method == method || (method == "HEAD" && r.method == "GET");
    if (method_ok && static_cast<int>(p.size()) < best_params) {
      best = &r;
      best_params = static_cast<int>(p.size());
      m.params = std::move(p);
    }
  }
  m.route = best;
  return m;
}

}  // namespace hart::serve
