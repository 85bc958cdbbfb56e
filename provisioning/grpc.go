package provisioning

import (
	"context"
	"errors"
	"strings"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"callpath/api/gen/wgtwo/annotations"
	commonv1 "callpath/api/gen/wgtwo/common/v1"
	pb "callpath/api/gen/wgtwo/sipbreakout/v1"
	"callpath/auth"
	"callpath/registry"
)

// GRPCService is wgtwo.sipbreakout.v1.SipBreakoutService.
type GRPCService struct {
	pb.UnimplementedSipBreakoutServiceServer
	Registry Registry
	Log      *logrus.Entry
}

// Register adds the service to s.
func (g *GRPCService) Register(s *grpc.Server) { pb.RegisterSipBreakoutServiceServer(s, g) }

type principalKey struct{}

// AuthInterceptor checks the bearer token of every SipBreakoutService call
// against the scope its method declares ((wgtwo.scope) in the proto) and
// puts the principal in the context. Other services (health, reflection)
// pass untouched.
func AuthInterceptor(v TokenVerifier) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, "/"+pb.SipBreakoutService_ServiceDesc.ServiceName+"/") {
			return next(ctx, req)
		}
		var token string
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			for _, h := range md.Get("authorization") {
				if t, ok := auth.BearerToken(h); ok {
					token = t
					break
				}
			}
		}
		p, err := principalOf(ctx, v, token, methodScope(info.FullMethod))
		switch {
		case errors.Is(err, errMissingScope):
			return nil, status.Error(codes.PermissionDenied, err.Error())
		case err != nil:
			return nil, status.Error(codes.Unauthenticated, "missing or invalid bearer token")
		}
		return next(context.WithValue(ctx, principalKey{}, p), req)
	}
}

// methodScope reads the (wgtwo.scope) option of a method such as
// "/wgtwo.sipbreakout.v1.SipBreakoutService/UpsertRegistration". A method
// without one needs ScopeWrite: fail closed.
func methodScope(fullMethod string) string {
	name := strings.ReplaceAll(strings.TrimPrefix(fullMethod, "/"), "/", ".")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return ScopeWrite
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		return ScopeWrite
	}
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok || !proto.HasExtension(opts, annotations.E_Scope) {
		return ScopeWrite
	}
	return proto.GetExtension(opts, annotations.E_Scope).(string)
}

func principalFrom(ctx context.Context) (registry.Principal, error) {
	p, ok := ctx.Value(principalKey{}).(registry.Principal)
	if !ok {
		return p, status.Error(codes.Unauthenticated, "missing or invalid bearer token")
	}
	return p, nil
}

func (g *GRPCService) UpsertRegistration(ctx context.Context, req *pb.UpsertRegistrationRequest) (*pb.UpsertRegistrationResponse, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetRegistration() == nil {
		return &pb.UpsertRegistrationResponse{StatusCode: pb.StatusCode_STATUS_CODE_NOT_ACCEPTABLE, ErrorMessage: "registration is required"}, nil
	}
	reg, err := g.Registry.Upsert(ctx, p, fromProto(req.GetRegistration()))
	if err != nil {
		msg, gerr := g.outcome(ctx, "upsert", err)
		if gerr != nil {
			return nil, gerr
		}
		return &pb.UpsertRegistrationResponse{StatusCode: pb.StatusCode_STATUS_CODE_NOT_ACCEPTABLE, ErrorMessage: msg}, nil
	}
	return &pb.UpsertRegistrationResponse{StatusCode: pb.StatusCode_STATUS_CODE_OK,
		TimeToLive: durationpb.New(reg.ExpiresAt.Sub(reg.UpdatedAt))}, nil
}

func (g *GRPCService) DeleteRegistration(ctx context.Context, req *pb.DeleteRegistrationRequest) (*pb.DeleteRegistrationResponse, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetRegistration() == nil {
		return &pb.DeleteRegistrationResponse{StatusCode: pb.StatusCode_STATUS_CODE_NOT_ACCEPTABLE, ErrorMessage: "registration is required"}, nil
	}
	if err := g.Registry.Delete(ctx, p, fromProto(req.GetRegistration())); err != nil {
		msg, gerr := g.outcome(ctx, "delete", err)
		if gerr != nil {
			return nil, gerr
		}
		return &pb.DeleteRegistrationResponse{StatusCode: pb.StatusCode_STATUS_CODE_NOT_ACCEPTABLE, ErrorMessage: msg}, nil
	}
	return &pb.DeleteRegistrationResponse{StatusCode: pb.StatusCode_STATUS_CODE_OK}, nil
}

// outcome maps a registry error once: a rejection or an absent number is
// an answer in the API's own terms (NOT_ACCEPTABLE and a message), another
// owner's number is PermissionDenied, anything else an internal failure
// that is logged, not described.
func (g *GRPCService) outcome(ctx context.Context, op string, err error) (string, error) {
	var rej *registry.Rejection
	switch {
	case errors.As(err, &rej):
		return rej.Message, nil
	case errors.Is(err, registry.ErrNotFound):
		return err.Error(), nil
	case errors.Is(err, registry.ErrForbidden):
		return "", status.Error(codes.PermissionDenied, err.Error())
	default:
		g.Log.WithContext(ctx).WithError(err).WithField("op", op).Error("registration operation failed")
		return "", status.Error(codes.Unavailable, "registration store unavailable, try again")
	}
}

func fromProto(r *pb.Registration) registry.Registration {
	return registry.Registration{
		PhoneNumber: r.GetPhoneNumber().GetE164(),
		RouteType:   registry.RouteType(r.GetRouteType()),
		SIPURI:      r.GetSipUri(),
		MOPrefix:    r.GetMobileOriginatingPrefix(),
		MTPrefix:    r.GetMobileTerminatingPrefix(),
	}
}

func toProto(r registry.Registration) *pb.Registration {
	return &pb.Registration{
		PhoneNumber:             &commonv1.E164{E164: r.PhoneNumber},
		RouteType:               pb.RouteType(r.RouteType),
		SipUri:                  r.SIPURI,
		MobileOriginatingPrefix: r.MOPrefix,
		MobileTerminatingPrefix: r.MTPrefix,
	}
}
