package frontend

import (
	"unsafe"

	"github.com/tetratelabs/wazero/internal/engine/wazevo/ssa"
	"github.com/tetratelabs/wazero/internal/engine/wazevo/wazevoapi"
	"github.com/tetratelabs/wazero/internal/wasm"
)

// moduleInstanceLoopFuelOffset is the offset of wasm.ModuleInstance's
// LoopFuel word.
var moduleInstanceLoopFuelOffset = uint32(unsafe.Offsetof(wasm.ModuleInstance{}.LoopFuel))

// insertTerminationCheck inserts, at a loop header, what lets a module be
// closed while it loops, and keeps it preemptible: count the module
// instance's LoopFuel down and, only when it goes negative, call out to Go
// through the checkModuleExitCode trampoline (which ends the call if the
// module is closed, and otherwise yields to the Go scheduler, so that a
// module computing without host calls neither keeps its thread from other
// goroutines nor holds up a garbage collection that stops the world), then
// fill it again. Upstream calls out at every loop header, which costs a
// Go-built module most of its CPU time; a closed module now stops within
// LoopFuel loop iterations instead of at the next one.
func (c *Compiler) insertTerminationCheck() {
	builder := c.ssaBuilder
	modulePtr := builder.AllocateInstruction().
		AsLoad(c.moduleCtxPtrValue, c.offset.ModuleInstanceOffset.U32(), ssa.TypeI64).
		Insert(builder).Return()
	fuel := builder.AllocateInstruction().
		AsLoad(modulePtr, moduleInstanceLoopFuelOffset, ssa.TypeI64).
		Insert(builder).Return()
	one := builder.AllocateInstruction().AsIconst64(1).Insert(builder).Return()
	left := builder.AllocateInstruction().AsIsub(fuel, one).Insert(builder).Return()
	builder.AllocateInstruction().AsStore(ssa.OpcodeStore, left, modulePtr, moduleInstanceLoopFuelOffset).Insert(builder)
	zero := builder.AllocateInstruction().AsIconst64(0).Insert(builder).Return()
	empty := builder.AllocateInstruction().AsIcmp(left, zero, ssa.IntegerCmpCondSignedLessThan).Insert(builder).Return()

	callOut, following := builder.AllocateBasicBlock(), builder.AllocateBasicBlock()
	builder.AllocateInstruction().AsBrnz(empty, ssa.ValuesNil, callOut).Insert(builder)
	c.insertJumpToBlock(ssa.ValuesNil, following)

	builder.SetCurrentBlock(callOut)
	checkModuleExitCodePtr := builder.AllocateInstruction().
		AsLoad(c.execCtxPtrValue,
			wazevoapi.ExecutionContextOffsetCheckModuleExitCodeTrampolineAddress.U32(),
			ssa.TypeI64,
		).Insert(builder).Return()
	args := c.allocateVarLengthValues(1, c.execCtxPtrValue)
	builder.AllocateInstruction().
		AsCallIndirect(checkModuleExitCodePtr, &c.checkModuleExitCodeSig, args).
		Insert(builder)
	full := builder.AllocateInstruction().AsIconst64(wazevoapi.LoopFuel).Insert(builder).Return()
	builder.AllocateInstruction().AsStore(ssa.OpcodeStore, full, modulePtr, moduleInstanceLoopFuelOffset).Insert(builder)
	c.insertJumpToBlock(ssa.ValuesNil, following)

	builder.SetCurrentBlock(following)
	builder.Seal(callOut)
	builder.Seal(following)
}
