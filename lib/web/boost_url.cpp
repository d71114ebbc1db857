// web/boost_url: Boost.URL's compiled part, built into this module (Debian ships Boost.URL as
// headers only). Included in exactly one translation unit.
#include <boost/url/src.hpp>
