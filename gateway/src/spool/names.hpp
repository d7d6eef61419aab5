// The spool folder implements core's Spool interface (core/spool.hpp): its implementations use
// the interface's names unqualified, as they did when the interface lived here.
#pragma once

#include "core/spool.hpp"

namespace citygate::spool {

namespace pb = citygate::v1;

using core::AppendResult;
using core::ReaderId;
using core::ReadResult;
using core::RecordVisitor;
using core::SetAsideResult;
using core::Spool;
using core::SpoolStats;

}  // namespace citygate::spool
